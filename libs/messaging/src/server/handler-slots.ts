import { MessageFifo } from '../backend/message-fifo';

/**
 * The `concurrency` of one route, kept by the core: at most `limit` of its handlers run at once in
 * this instance, whatever source their deliveries came from. A backend bounds each of its sources
 * (AMQP prefetch, a pull sized to free slots), and a route with two (its durable queue, and the
 * volatile requests of `BrokerBackend.request()`) can hand over up to twice as many; the deliveries
 * over the limit wait here, in arrival order, until a handler finishes.
 *
 * While the limit is not reached a delivery costs a counter, no allocation.
 */
export class HandlerSlots {
  private running = 0;
  private readonly waiting = new MessageFifo<() => void>();

  constructor(readonly limit: number) {}

  /** Takes a slot: undefined when one was free, else a promise that resolves once it is taken. */
  take(): Promise<void> | undefined {
    if (this.running < this.limit) {
      this.running++;
      return undefined;
    }
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Gives a slot back: to the longest-waiting delivery, if one waits. */
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}
