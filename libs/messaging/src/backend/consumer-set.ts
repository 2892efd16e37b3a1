/**
 * The consumers of a backend's subscriptions, from `subscribe()` to `close()`, and the race between
 * the two settled in one place:
 *
 * | moment                           | what happens                                                      |
 * | -------------------------------- | ----------------------------------------------------------------- |
 * | subscribe after close began      | refused at once (`BackendClosedError`)                            |
 * | close while a consumer starts    | close waits for the start (and cancels it first where the        |
 * |                                  | consumer supports that: `cancelsStart`), then stops it with the  |
 * |                                  | others; the subscribe rejects with `BackendClosedError`           |
 * | a start that fails               | the consumer retires: deliveries it took meanwhile still settle, |
 * |                                  | and close waits for them                                         |
 * | `cancel()` of a subscription     | stops intake; its deliveries still settle in the background      |
 * |                                  | (at most `drainMs`), and close waits for them                    |
 * | close                            | cancels every consumer, then waits for their deliveries to settle |
 * |                                  | (at most `drainMs`); what else the broker needs is the backend's |
 *
 * A consumer here is the broker's own class (`AmqpConsumer`, `RedisConsumer`, `NatsConsumer`).
 */
import { BackendClosedError } from '../errors/messaging.errors';
import type { BackendSubscription, ConsumerState } from './broker-backend.interface';

/** What the set asks of a consumer. */
export interface SetConsumer {
  /** Whether it consumes now, for `BrokerBackend.consumerStates()`. */
  readonly state: ConsumerState;
  /** Stops intake; idempotent. Deliveries in flight still settle. */
  cancel(): Promise<void>;
  /** Resolves once no delivery is in flight, or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<void>;
}

/** How a backend's consumers stop. */
export interface ConsumerSetOptions {
  /** How long close and a cancelled subscription wait for deliveries in flight to settle. */
  readonly drainMs: number;
  /**
   * True when `cancel()` during `start` makes the start give up at once (Redis: its reader stops
   * waiting to connect); else close waits for starts to end by themselves. @default false
   */
  readonly cancelsStart?: boolean;
}

export class ConsumerSet<C extends SetConsumer> implements Iterable<C> {
  private readonly active = new Set<C>();
  /** Cancelled (or failed to start) and still settling deliveries: close waits for them. */
  private readonly retiring = new Set<C>();
  /** Consumers whose start runs, with it. */
  private readonly starting = new Map<C, Promise<void>>();
  private closing = false;

  constructor(private readonly options: ConsumerSetOptions) {}

  /** The consumers of live subscriptions. */
  [Symbol.iterator](): Iterator<C> {
    return this.active.values();
  }

  /** Whether each live subscription consumes now. */
  states(): ConsumerState[] {
    return [...this.active].map((consumer) => consumer.state);
  }

  /**
   * Starts `consumer` with `start` and, unless close began meanwhile, adds it. Rejects with
   * `BackendClosedError` (`closedWhileStarting`'s message) when close began before it or while it
   * started, and with the start's error when it fails.
   */
  async start(
    consumer: C,
    start: () => Promise<void>,
    closedWhileStarting: string,
  ): Promise<BackendSubscription> {
    if (this.closing) throw new BackendClosedError(closedWhileStarting);
    const started = start();
    this.starting.set(consumer, started);
    try {
      await started;
    } catch (error) {
      this.retire(consumer);
      throw error;
    } finally {
      this.starting.delete(consumer);
    }
    // Close took it with the others (it was starting): it is stopped there.
    if (this.closing) throw new BackendClosedError(closedWhileStarting);
    this.active.add(consumer);
    return { cancel: () => this.cancel(consumer) };
  }

  /**
   * Stops every consumer and waits for their deliveries to settle (see the file comment); resolves
   * with all of them, for what the broker still needs (closing channels, forgetting names).
   */
  async close(): Promise<C[]> {
    this.closing = true;
    const starting = [...this.starting];
    if (this.options.cancelsStart) await Promise.all(starting.map(([c]) => c.cancel()));
    await Promise.all(starting.map(([, started]) => started.catch(() => undefined)));
    const consumers = [...new Set([...this.active, ...this.retiring, ...starting.map(([c]) => c)])];
    await Promise.all(consumers.map((c) => c.cancel()));
    await Promise.all(consumers.map((c) => c.drain(this.options.drainMs)));
    this.active.clear();
    this.retiring.clear();
    return consumers;
  }

  private async cancel(consumer: C): Promise<void> {
    if (!this.active.delete(consumer)) return;
    this.retiring.add(consumer);
    await consumer.cancel();
    this.retire(consumer);
  }

  /** Lets `consumer`'s deliveries settle in the background, close waiting for them. */
  private retire(consumer: C): void {
    this.retiring.add(consumer);
    void consumer.drain(this.options.drainMs).then(() => this.retiring.delete(consumer));
  }
}
