import { BaseRpcContext } from '@nestjs/microservices';
import type { MessageContext } from './message-context';

/**
 * What a batch handler (`@Consume(topic, { batch })`) knows about its messages, through `@Ctx()`:
 * `items[i]` is the `MessageContext` of `payloads[i]` (its message id, attempt, headers...).
 *
 * @example
 * @Consume('order.created', { batch: { size: 100, maxWaitMs: 50 } })
 * save(@Payload() orders: OrderCreated[], @Ctx() batch: BatchContext) {
 *   batch.items.forEach((item, i) => this.logger.debug(`${orders[i].id}: attempt ${item.attempt}`));
 * }
 */
export class BatchContext extends BaseRpcContext<[readonly MessageContext[], AbortSignal]> {
  constructor(items: readonly MessageContext[], signal: AbortSignal) {
    super([items, signal]);
  }

  /** One context per payload, in the same order. */
  get items(): readonly MessageContext[] {
    return this.args[0];
  }

  /** How many messages this batch holds. */
  get size(): number {
    return this.args[0].length;
  }

  /** Aborted when the app shuts down and the handler still runs after `shutdownTimeoutMs` (see `MessageContext.signal`). */
  get signal(): AbortSignal {
    return this.args[1];
  }
}
