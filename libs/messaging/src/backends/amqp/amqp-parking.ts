/**
 * Delayed publishes to a topic on RabbitMQ. The levels (`amqp-delay-levels.ts`) deliver to one queue,
 * and RabbitMQ cannot say, when a delay ends, whether a topic still routes. So a delayed publish is
 * published to the topic exchange at once, `mandatory` like any publish (no queue bound: it comes back,
 * `UnroutableError`), with its due time (epoch ms, the publisher's clock) in {@link DUE_HEADER}. Each
 * queue that receives a copy before it is due parks it: our consumer sends the copy through the levels
 * addressed to its own queue for the time left, then acknowledges it. Back when due, it is handled.
 * A delay longer than the levels hold (49.7 days) is parked again when it comes back early.
 *
 * Every message pays one header read for this; only a delayed one is parked (one copy per queue).
 */
import type { Delivery } from '../../backend/broker-backend.interface';
import { MessagingHeaders } from '../../backend/message-headers';
import { MAX_LEVEL_DELAY_MS } from './amqp-delay-levels';
import { withoutBrokerHeaders } from './amqp-messages';

/** Header of a delayed publish to a topic: when it is due, in ms since the epoch. */
export const DUE_HEADER = 'x-messaging-due';

/**
 * How long to park a message whose headers are `headers`: the time left to its due time (at most what
 * the levels hold in one pass), or 0 when it has none or is due. A message without the header costs
 * one read (the clock is read only for a delayed one).
 */
export function parkingDelay(
  headers: Readonly<Record<string, unknown>> | undefined,
  now: () => number = Date.now,
): number {
  const due = headers?.[DUE_HEADER];
  if (due === undefined || typeof due !== 'number') return 0;
  const left = due - now();
  return left > 0 ? Math.min(Math.ceil(left), MAX_LEVEL_DELAY_MS) : 0;
}

/**
 * The headers of the parked copy of `delivery`: its own, with the attempt and topic it was received
 * as, so that it comes back as the same first attempt of the same topic (a copy's headers are
 * believed; what a sender wrote in a publish is not).
 */
export function parkedHeaders(delivery: Delivery): Record<string, unknown> {
  return {
    ...withoutBrokerHeaders(delivery.headers),
    [MessagingHeaders.ATTEMPT]: delivery.attempt,
    [MessagingHeaders.TOPIC]: delivery.topic,
  };
}
