/**
 * Pure conversions between AMQP messages and the backend contract's types: publish properties, a
 * {@link Delivery}, the properties of a retry copy or dead letter, and a {@link DeadLetter} read back
 * from the dead-letter queue. The library's headers are stamped and read by the contract's helpers
 * (`backend/message-headers.ts`); what is AMQP's own here is RabbitMQ's `x-death` family and the
 * order stamp of our dead letters.
 */
import { createHash } from 'node:crypto';
import type { ConsumeMessage, GetMessage, Options } from 'amqplib';
import type { DeadLetter, Delivery, OutgoingMessage } from '../../backend/broker-backend.interface';
import {
  attemptOf,
  producerHeaders,
  readDeadLetter,
  type StoredMessage,
  topicOf,
} from '../../backend/message-headers';
import { DEAD_LETTER_ORDER_HEADER } from './amqp-dead-letter-order';
import { isDelayDelivery } from './amqp-delay-levels';

/**
 * Headers RabbitMQ writes when it dead-letters a message, and the order stamp of our own dead letters
 * (`amqp-dead-letter-order.ts`): never copied onto our own copies, never among a letter's headers.
 */
const BROKER_HEADERS = new RegExp(
  `^(x-(death|first-death-.*|last-death-.*|delivery-count)|${DEAD_LETTER_ORDER_HEADER})$`,
);

/**
 * AMQP properties of a published message: persistent, with ids, timestamp (seconds) and headers;
 * `mandatory` makes RabbitMQ return it when no queue receives it.
 */
export function publishProperties(message: OutgoingMessage, mandatory: boolean): Options.Publish {
  return {
    persistent: true,
    mandatory,
    messageId: message.messageId,
    correlationId: message.correlationId,
    contentType: message.contentType,
    contentEncoding: message.contentEncoding,
    timestamp: Math.floor(message.timestamp / 1000),
    headers: message.headers,
  };
}

/**
 * Builds the {@link Delivery} of a message consumed from `queue`. Its attempt and original topic
 * are read from the library's headers only on a copy the library made: retries, replays and parked
 * delayed publishes reach their queue through the default exchange, or through the delay levels'
 * delivery exchange. A message published to the topic exchange is a first attempt of the topic it
 * was routed by, whatever headers its sender wrote.
 */
export function toDelivery(msg: ConsumeMessage | GetMessage, queue: string): Delivery {
  const p = msg.properties;
  const headers: Record<string, unknown> = p.headers ?? {};
  const copy = msg.fields.exchange === '' || isDelayDelivery(msg.fields.exchange);
  return {
    body: msg.content,
    topic: copy ? topicOf(headers, msg.fields.routingKey) : msg.fields.routingKey,
    queue,
    headers,
    messageId: stringOr(p.messageId) ?? contentId(msg),
    correlationId: stringOr(p.correlationId),
    contentType: stringOr(p.contentType),
    contentEncoding: stringOr(p.contentEncoding),
    replyTo: stringOr(p.replyTo),
    timestamp: typeof p.timestamp === 'number' ? p.timestamp * 1000 : undefined,
    attempt: copy ? attemptOf(headers) : 1,
    redelivered: msg.fields.redelivered,
  };
}

/**
 * The message id of a message its sender gave none (a plain `basic.publish` without `message_id`).
 * RabbitMQ has no id of its own for a message, so it is a hash of what the sender sent: the exchange
 * and routing key it published with, the body, the properties and the headers (less those RabbitMQ
 * adds on a redelivery or dead-lettering, `x-delivery-count`, `x-death`). Each delivery of the message
 * gets the same id, so the inbox (`idempotent: true`) handles a redelivery once; two identical
 * messages share it too. Only such messages pay for the hash.
 */
export function contentId(msg: ConsumeMessage | GetMessage): string {
  const p = msg.properties;
  const headers = withoutBrokerHeaders(p.headers ?? {});
  const described = JSON.stringify(
    [
      msg.fields.exchange,
      msg.fields.routingKey,
      p.contentType,
      p.contentEncoding,
      p.correlationId,
      p.replyTo,
      p.timestamp,
      p.type,
      p.appId,
      p.userId,
      Object.keys(headers)
        .sort()
        .map((key) => [key, headers[key]]),
    ],
    (_, value: unknown) => (typeof value === 'bigint' ? value.toString() : value),
  );
  const hash = createHash('sha256').update(described).update(msg.content);
  return `amqp-${hash.digest('hex').slice(0, 32)}`;
}

/**
 * Properties of a copy of `delivery` (original body, type, ids, timestamp), persistent, with
 * `headers`, returned by RabbitMQ if no queue receives it.
 */
export function copyProperties(
  delivery: Delivery,
  headers: Record<string, unknown>,
): Options.Publish {
  return {
    persistent: true,
    mandatory: true,
    messageId: delivery.messageId,
    correlationId: delivery.correlationId,
    contentType: delivery.contentType,
    contentEncoding: delivery.contentEncoding,
    timestamp: delivery.timestamp !== undefined ? Math.floor(delivery.timestamp / 1000) : undefined,
    headers,
  };
}

/** The headers of `headers` that are neither RabbitMQ's dead-lettering record nor our order stamp. */
export function withoutBrokerHeaders(
  headers: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key in headers) if (!BROKER_HEADERS.test(key)) out[key] = headers[key];
  return out;
}

/**
 * Reads a message of a dead-letter queue. Messages the broker put there itself (a quorum queue's
 * delivery limit exceeded) have none of our dead-letter headers: their details come from the newest
 * `x-death` entry, and their id from the message id, so that it stays the same between listings.
 */
export function toDeadLetter(msg: GetMessage): DeadLetter {
  const p = msg.properties;
  const stored: StoredMessage = {
    body: msg.content,
    headers: withoutBrokerHeaders(p.headers ?? {}),
    messageId: stringOr(p.messageId),
    correlationId: stringOr(p.correlationId),
    contentType: stringOr(p.contentType),
    contentEncoding: stringOr(p.contentEncoding),
  };
  return readDeadLetter(stored) ?? brokerDeadLetter(stored, p.headers ?? {}, msg.fields);
}

function brokerDeadLetter(
  stored: StoredMessage,
  headers: Readonly<Record<string, unknown>>,
  fields: { routingKey: string; deliveryTag: number },
): DeadLetter {
  const death = newestDeath(headers);
  const deadAt = death.time ?? new Date(0);
  const messageId = stored.messageId ?? '';
  const routingKey = fields.routingKey;
  return {
    id: `broker:${messageId || fields.deliveryTag}:${deadAt.getTime()}`,
    messageId,
    correlationId: stored.correlationId,
    topic: topicOf(stored.headers, death.routingKey ?? routingKey),
    queue: death.queue ?? '',
    body: stored.body,
    contentType: stored.contentType,
    contentEncoding: stored.contentEncoding,
    headers: producerHeaders(stored.headers),
    reason: 'delivery-limit',
    error: `dead-lettered by the broker (${death.reason ?? 'unknown'})`,
    errorClass: 'DeliveryLimitExceeded',
    attempts: attemptOf(stored.headers),
    firstFailedAt: deadAt,
    lastFailedAt: deadAt,
    deadLetteredAt: deadAt,
  };
}

/** One entry of RabbitMQ's `x-death` header. */
export interface DeathInfo {
  queue?: string;
  reason?: string;
  routingKey?: string;
  time?: Date;
}

/** The most recent `x-death` entry (RabbitMQ keeps them newest first). */
export function newestDeath(headers: Readonly<Record<string, unknown>>): DeathInfo {
  const deaths = headers['x-death'];
  const newest = Array.isArray(deaths)
    ? (deaths[0] as Record<string, unknown> | undefined)
    : undefined;
  if (!newest) return {};
  const keys = newest['routing-keys'];
  const time = newest.time as { value?: number } | number | undefined;
  const seconds = typeof time === 'number' ? time : time?.value;
  return {
    queue: stringOr(newest.queue),
    reason: stringOr(newest.reason),
    routingKey: Array.isArray(keys) ? stringOr(keys[0]) : undefined,
    time: typeof seconds === 'number' ? new Date(seconds * 1000) : undefined,
  };
}

function stringOr(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}
