import { BaseRpcContext } from '@nestjs/microservices';
import type { Delivery } from '../backend/broker-backend.interface';
import { orderingKeyOf, versionOf } from '../backend/message-headers';
import type { CloudEventAttributes, CloudEventDelivery } from '../codec/cloud-events';

const NEVER_ABORTED = new AbortController().signal;

/**
 * What a handler knows about the message it handles, through `@Ctx()`.
 *
 * @example
 * @Consume('order.created')
 * handle(@Payload() order: OrderCreated, @Ctx() ctx: MessageContext) {
 *   this.logger.log(`order ${order.id}, attempt ${ctx.attempt}`);
 * }
 */
export class MessageContext extends BaseRpcContext<[Delivery, string, AbortSignal]> {
  constructor(delivery: Delivery, service: string, signal: AbortSignal = NEVER_ABORTED) {
    super([delivery, service, signal]);
  }

  /**
   * Aborted when the app shuts down and this handler is still running after `shutdownTimeoutMs`: the
   * message is then not acknowledged and will be redelivered, maybe to another instance while this
   * one still runs. Pass it to what the handler awaits (`fetch(url, { signal })`) or check
   * `signal.aborted` between steps, so that the work stops instead of being done twice.
   */
  get signal(): AbortSignal {
    return this.args[2];
  }

  /** The topic the message was published to (for a direct send, the queue name). */
  get topic(): string {
    return this.args[0].topic;
  }

  /** The queue it was consumed from. */
  get queue(): string {
    return this.args[0].queue;
  }

  /** The consuming service (consumer group). */
  get service(): string {
    return this.args[1];
  }

  /** The producer's message id: the idempotency key (a CloudEvent's `id`). */
  get messageId(): string {
    return this.args[0].messageId;
  }

  /**
   * Correlation id: the one the producer gave, else its message id (this library always sets one);
   * undefined only on a message from a foreign producer that set none.
   */
  get correlationId(): string | undefined {
    return this.args[0].correlationId;
  }

  /** 1 on the first delivery, 2 on the first retry, and so on. */
  get attempt(): number {
    return this.args[0].attempt;
  }

  /** The message headers as the producer set them (plus the library's `x-messaging-*` ones). */
  get headers(): Readonly<Record<string, unknown>> {
    return this.args[0].headers;
  }

  /** The `orderingKey` the producer gave (`publish(..., { orderingKey })`), if any. */
  get orderingKey(): string | undefined {
    return orderingKeyOf(this.args[0].headers);
  }

  /**
   * The attributes of the CloudEvent this message carried (binary or structured mode: `type`,
   * `source`, `subject`, `time`, extensions...), or `undefined` for a message that is not one.
   */
  get cloudEvent(): CloudEventAttributes | undefined {
    return (this.args[0] as Partial<CloudEventDelivery>).cloudEvent;
  }

  /**
   * The version the message was sent as (its `x-messaging-version` header, stamped by
   * `@Producer({ version })` or `publish(..., { version })`): 1 when it has none. A handler of
   * `@Consume({ version })` gets the payload upcast to its version whatever this says; a handler
   * without `version` gets the payload as sent (and 1 here for a header it cannot read).
   */
  get version(): number {
    return versionOf(this.args[0].headers) ?? 1;
  }

  /** True when the broker says this delivery may have been seen before (a crash, a lost connection). */
  get redelivered(): boolean {
    return this.args[0].redelivered;
  }

  /** True when the producer waits for the handler's return value (request/reply). */
  get isRequest(): boolean {
    return this.args[0].replyTo !== undefined;
  }

  /** The raw delivery: body bytes, content type, reply address. */
  getDelivery(): Delivery {
    return this.args[0];
  }
}
