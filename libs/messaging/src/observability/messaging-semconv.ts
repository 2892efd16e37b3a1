/**
 * The attributes and names of the library's messaging spans, after OpenTelemetry's semantic
 * conventions for messaging (`@opentelemetry/semantic-conventions` 1.45, incubating entry):
 *
 * | attribute                                    | send | process | value                                            |
 * | -------------------------------------------- | ---- | ------- | ------------------------------------------------ |
 * | `messaging.system.name`, `messaging.system`  | yes  | yes     | `rabbitmq`, `redis`, `nats`, `memory` (the second: the deprecated name, still read by many back-ends) |
 * | `messaging.operation.type`, `.operation.name`| yes  | yes     | `send` / `process`                               |
 * | `messaging.destination.name`                 | yes  | yes     | the topic (or queue of a direct send)            |
 * | `messaging.rabbitmq.destination.routing_key` | yes  | yes     | the same, on RabbitMQ (our routing key is the topic) |
 * | `messaging.message.id`                       | yes  | yes     | the message id                                   |
 * | `messaging.message.conversation_id`          | yes  | yes     | the correlation id, when there is one            |
 * | `messaging.message.body.size`                | yes  | yes     | encoded body bytes                               |
 * | `messaging.consumer.group.name`              |      | yes     | the service                                      |
 * | `messaging.destination.subscription.name`    |      | yes     | the queue                                        |
 * | `messaging.nest.handler`, `messaging.nest.attempt` |  | yes     | `Class.method`, 1 on the first delivery          |
 * | `error.type`                                 | on failure | on failure | the error's class name                   |
 *
 * Span names are `{operation} {destination}`: `send orders.created`, `process orders.created`.
 */
import type { Delivery } from '../backend/broker-backend.interface';

/** Who published or handles a message, for span names and attributes. */
export interface TracedMessage {
  readonly topic?: string;
  readonly queue?: string;
  readonly messageId: string;
  readonly correlationId?: string;
  /** The encoded body's bytes, when known. */
  readonly bodySize?: number;
}

/** A span's attributes. */
export type SpanAttributes = Record<string, string | number>;

/** The topic (or queue) a message goes to: the span's destination. */
export function destination(message: TracedMessage): string {
  return message.topic ?? message.queue ?? 'unknown';
}

/** The attributes of a `send` or `process` span of `message` on `system` (see the table). */
export function messageAttributes(
  system: string,
  message: TracedMessage,
  operation: 'send' | 'process',
): SpanAttributes {
  const attributes: SpanAttributes = {
    'messaging.system.name': system,
    'messaging.system': system,
    'messaging.operation.type': operation,
    'messaging.operation.name': operation,
    'messaging.destination.name': destination(message),
    'messaging.message.id': message.messageId,
  };
  if (system === 'rabbitmq') {
    attributes['messaging.rabbitmq.destination.routing_key'] = destination(message);
  }
  if (message.correlationId !== undefined) {
    attributes['messaging.message.conversation_id'] = message.correlationId;
  }
  if (message.bodySize !== undefined) attributes['messaging.message.body.size'] = message.bodySize;
  return attributes;
}

/** The attributes of the `process` span of `delivery`, handled by `handler` of `service`. */
export function processAttributes(
  system: string,
  delivery: Delivery,
  handler: string,
  service: string,
): SpanAttributes {
  return {
    ...messageAttributes(
      system,
      {
        topic: delivery.topic,
        messageId: delivery.messageId,
        correlationId: delivery.correlationId,
        bodySize: delivery.body.length,
      },
      'process',
    ),
    'messaging.consumer.group.name': service,
    'messaging.destination.subscription.name': delivery.queue,
    'messaging.nest.handler': handler,
    'messaging.nest.attempt': delivery.attempt,
  };
}

/** `error` as an `Error`, and its `error.type`: its class name. */
export function failureOf(error: unknown): { failure: Error; type: string } {
  const failure = error instanceof Error ? error : new Error(JSON.stringify(error) ?? 'undefined');
  const type = error instanceof Error ? error.constructor.name || failure.name : '_OTHER';
  return { failure, type };
}
