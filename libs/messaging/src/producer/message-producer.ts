import type { ProducerTarget } from '../decorators/producer.decorator';
import type { MessagingPublisher, PublishOptions, RequestOptions } from './messaging.publisher';

/**
 * Publishes messages of type `T` to one topic (or named queue). Injected by `@Producer(topic)`.
 *
 * @example
 * constructor(@Producer('order.created') private readonly orderCreated: MessageProducer<OrderCreated>) {}
 */
export class MessageProducer<T = unknown> {
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
  request<R = unknown>(payload: T, options?: RequestOptions): Promise<R> {
    return this.publisher.request<R>(this.target, payload, options);
  }
}
