import type { Delivery, Settlement } from '../backend/broker-backend.interface';
import { MessagingHeaders, orderingKeyOf, retryHeaders } from '../backend/message-headers';
import { longTimeout } from '../backend/long-timeout';
import { KeyLanes } from './key-lanes';
import { REQUEUE } from './settlements';

/**
 * The deliveries of an ordered handler (`@Consume(topic, { ordered: true })`) in one process: one
 * message of an `orderingKey` at a time, in delivery order, and different keys at the same time (up to
 * the handler's `concurrency`, which `run` keeps). A message without a key is handled as by any
 * handler (a failure is retried through the broker).
 *
 * A failure the retry policy retries is retried here, in place, after its delay: the message stays
 * unacknowledged (the broker keeps it) and holds back the later messages of its key only, where a
 * retry copy would go to the back of the queue, behind them. Its attempts are counted here; when they
 * run out, its dead letter says how many were made. If the process dies while it waits, the broker
 * delivers it again (its attempts then count from the broker's); when the server closes, a waiting
 * retry, and a message waiting for its key, go back to the broker at once, unhandled.
 *
 * Across instances the order holds because an ordered route's subscription is exclusive (one active
 * consumer at a time, see `SubscriptionSpec.exclusive`).
 */
export class OrderedDeliveries {
  private readonly lanes = new KeyLanes();

  constructor(
    /** Handles one attempt of a delivery (the server's own path: slot, pause, handler, settlement). */
    private readonly run: (delivery: Delivery) => Promise<Settlement>,
    /** Aborted when the server starts closing. */
    private readonly closing: AbortSignal,
  ) {}

  deliver(delivery: Delivery): Promise<Settlement> {
    const key = orderingKeyOf(delivery.headers);
    // No key, no order to keep: handled (and retried through the broker) as by any handler.
    if (key === undefined) return this.run(delivery);
    return this.lanes
      .enter(key)
      .then(() => this.attempts(delivery))
      .finally(() => this.lanes.leave(key));
  }

  private async attempts(first: Delivery): Promise<Settlement> {
    let delivery = first;
    for (;;) {
      if (this.closing.aborted) return REQUEUE;
      const settlement = await this.run(delivery);
      if (settlement.action !== 'retry')
        return delivery === first ? settlement : counted(settlement, delivery);
      if (!(await waitUnlessAborted(settlement.delayMs, this.closing))) return REQUEUE;
      // The next attempt, as a retry copy would carry it: its number and the failure so far.
      delivery = {
        ...delivery,
        attempt: delivery.attempt + 1,
        headers: retryHeaders(delivery, settlement.failure),
        redelivered: false,
      };
    }
  }
}

/** A dead letter after attempts made in place says how many, and when the first one failed. */
function counted(settlement: Settlement, last: Delivery): Settlement {
  if (settlement.action !== 'dead-letter') return settlement;
  const first = last.headers[MessagingHeaders.FIRST_FAILURE];
  const firstAt = typeof first === 'string' ? new Date(first) : undefined;
  return { ...settlement, failure: { ...settlement.failure, attempts: last.attempt, firstAt } };
}

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
function waitUnlessAborted(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (waited: boolean): void => {
      cancel();
      signal.removeEventListener('abort', aborted);
      resolve(waited);
    };
    const aborted = (): void => done(false);
    // Kept alive as any message in hand: the close aborts it.
    const cancel = longTimeout(ms, () => done(true), true);
    signal.addEventListener('abort', aborted);
  });
}
