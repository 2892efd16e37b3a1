import type { ProducerTarget } from '../decorators/producer.decorator';
import type { MessagingPublisher, PublishOptions, RequestOptions } from './messaging.publisher';

/**
 * Publishes messages of type `T` to one topic (or named queue). Injected by `@Producer(topic)`. `R`
 * is the type of the replies to `request()`, which each call can also name (`request<Total>(...)`).
 *
 * @example
 * constructor(@Producer('order.created') private readonly orderCreated: MessageProducer<OrderCreated>) {}
 * constructor(@Producer('cart.total') private readonly totals: MessageProducer<CartRef, number>) {}
 */
export class MessageProducer<T = unknown, R = unknown> {
  constructor(
    /** Where this producer sends. */
    readonly target: ProducerTarget,
    private readonly publisher: MessagingPublisher,
  ) {}

  /**
   * Publishes one message. Resolves with its message id once the broker durably accepted it
   * (publisher confirm); rejects with `UnroutableError` when no queue receives it (unless allowed),
   * or with a clear error when the broker refuses or does not confirm in time.
   */
  publish(payload: T, options?: PublishOptions): Promise<string> {
    return this.publisher.publish(this.target, payload, options);
  }

  /**
   * Sends a request and resolves with the handler's return value. Rejects with
   * `RequestTimeoutError` after `timeoutMs`, or `RemoteHandlerError` when the handler threw.
   */
  request<Reply = R>(payload: T, options?: RequestOptions): Promise<Reply> {
    return this.publisher.request<Reply>(this.target, payload, options);
  }
}
