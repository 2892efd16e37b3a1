import type { Delivery } from './broker-backend.interface';

/**
 * A delivery as every log line about one message names it: id, topic, attempt and correlation id
 * (the trace id travels in the headers, and a handler's own lines get it from `currentMessage()`).
 */
export function describeDelivery(
  delivery: Pick<Delivery, 'messageId' | 'topic' | 'attempt' | 'correlationId'>,
): string {
  const correlation =
    delivery.correlationId !== undefined ? `, correlation ${delivery.correlationId}` : '';
  return `message ${delivery.messageId} on '${delivery.topic}' (attempt ${delivery.attempt}${correlation})`;
}
