/**
 * Pure conversions between AMQP messages and the backend contract's types: publish properties,
 * {@link Delivery}, the headers of a retry copy and of a dead letter, and back to a {@link DeadLetter}.
 */
import { randomUUID } from 'node:crypto';
import type { ConsumeMessage, GetMessage, MessageProperties, Options } from 'amqplib';
import {
  MessagingHeaders,
  type DeadLetter,
  type Delivery,
  type FailureInfo,
  type FailureReason,
  type MessageHeaders,
  type OutgoingMessage,
} from '../../backend/broker-backend.interface';

/** Headers the backend writes on a dead letter, next to the retry headers. */
export const DeadLetterHeaders = {
  ID: 'x-messaging-dead-letter-id',
  REASON: 'x-messaging-dead-letter-reason',
  ERROR: 'x-messaging-dead-letter-error',
  ERROR_CLASS: 'x-messaging-dead-letter-error-class',
  ATTEMPTS: 'x-messaging-dead-letter-attempts',
  QUEUE: 'x-messaging-dead-letter-queue',
  AT: 'x-messaging-dead-letter-at',
} as const;

/** Longest error text carried in a header, in UTF-8 bytes. */
export const MAX_ERROR_BYTES = 1024;

const RETRY_HEADERS: readonly string[] = [
  MessagingHeaders.ATTEMPT,
  MessagingHeaders.FIRST_FAILURE,
  MessagingHeaders.LAST_FAILURE,
  MessagingHeaders.LAST_ERROR,
  MessagingHeaders.TOPIC,
  ...Object.values(DeadLetterHeaders),
];
const BROKER_HEADERS = /^x-(death|first-death-.*|last-death-.*|delivery-count)$/;
const FAILURE_REASONS: readonly FailureReason[] = [
  'handler-error',
  'max-attempts',
  'unrecoverable',
  'validation',
  'malformed',
  'delivery-limit',
];

/** Truncates `text` to at most `maxBytes` UTF-8 bytes without splitting a character. */
export function truncateUtf8(text: string, maxBytes = MAX_ERROR_BYTES): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  return bytes
    .subarray(0, maxBytes)
    .toString('utf8')
    .replace(/\uFFFD+$/, '');
}

/** Reads the attempt header: an integer in 1..1e6, else 1 (headers are attacker-controlled). */
export function parseAttempt(value: unknown): number {
  const n = typeof value === 'string' && /^\d{1,7}$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 1_000_000 ? n : 1;
}

/** AMQP properties of a published message: persistent, with ids, timestamp (seconds) and headers. */
export function publishProperties(
  message: OutgoingMessage,
  headers: MessageHeaders = message.headers,
): Options.Publish {
  return {
    persistent: true,
    messageId: message.messageId,
    correlationId: message.correlationId,
    contentType: message.contentType,
    timestamp: Math.floor(message.timestamp / 1000),
    headers: { ...headers },
  };
}

/** Builds the {@link Delivery} of a message consumed from `queue`. */
export function toDelivery(msg: ConsumeMessage | GetMessage, queue: string): Delivery {
  const p = msg.properties;
  const headers: Record<string, unknown> = { ...(p.headers ?? {}) };
  const topic = headers[MessagingHeaders.TOPIC];
  return {
    body: msg.content,
    topic: typeof topic === 'string' && topic.length > 0 ? topic : msg.fields.routingKey,
    queue,
    headers,
    messageId: stringOr(p.messageId) ?? randomUUID(),
    correlationId: stringOr(p.correlationId),
    contentType: stringOr(p.contentType),
    contentEncoding: stringOr(p.contentEncoding),
    replyTo: stringOr(p.replyTo),
    timestamp: typeof p.timestamp === 'number' ? p.timestamp * 1000 : undefined,
    attempt: parseAttempt(headers[MessagingHeaders.ATTEMPT]),
    redelivered: msg.fields.redelivered,
  };
}

/** Properties of a copy of `delivery` (original body, type, ids, timestamp), persistent, with `headers`. */
export function copyProperties(
  delivery: Delivery,
  headers: Record<string, unknown>,
): Options.Publish {
  return {
    persistent: true,
    messageId: delivery.messageId,
    correlationId: delivery.correlationId,
    contentType: delivery.contentType,
    contentEncoding: delivery.contentEncoding,
    timestamp: delivery.timestamp !== undefined ? Math.floor(delivery.timestamp / 1000) : undefined,
    headers,
  };
}

/** Headers of the retry copy of `delivery`: next attempt, failure times and error, original topic. */
export function retryHeaders(delivery: Delivery, failure: FailureInfo): Record<string, unknown> {
  const headers = withoutBrokerHeaders(delivery.headers);
  const at = failure.at.toISOString();
  const first = delivery.headers[MessagingHeaders.FIRST_FAILURE];
  return {
    ...headers,
    [MessagingHeaders.ATTEMPT]: delivery.attempt + 1,
    [MessagingHeaders.FIRST_FAILURE]: typeof first === 'string' ? first : at,
    [MessagingHeaders.LAST_FAILURE]: at,
    [MessagingHeaders.LAST_ERROR]: truncateUtf8(failure.message),
    [MessagingHeaders.TOPIC]: delivery.topic,
  };
}

/** Headers of the dead letter of `delivery`: everything {@link DeadLetter} needs. */
export function deadLetterHeaders(
  delivery: Delivery,
  failure: FailureInfo,
): Record<string, unknown> {
  const at = failure.at.toISOString();
  const first = delivery.headers[MessagingHeaders.FIRST_FAILURE];
  return {
    ...withoutBrokerHeaders(delivery.headers),
    [MessagingHeaders.ATTEMPT]: delivery.attempt,
    [MessagingHeaders.FIRST_FAILURE]: typeof first === 'string' ? first : at,
    [MessagingHeaders.LAST_FAILURE]: at,
    [MessagingHeaders.LAST_ERROR]: truncateUtf8(failure.message),
    [MessagingHeaders.TOPIC]: delivery.topic,
    [DeadLetterHeaders.ID]: randomUUID(),
    [DeadLetterHeaders.REASON]: failure.reason,
    [DeadLetterHeaders.ERROR]: truncateUtf8(failure.message),
    [DeadLetterHeaders.ERROR_CLASS]: truncateUtf8(failure.errorClass, 256),
    [DeadLetterHeaders.ATTEMPTS]: delivery.attempt,
    [DeadLetterHeaders.QUEUE]: delivery.queue,
    [DeadLetterHeaders.AT]: new Date().toISOString(),
  };
}

/**
 * Reads a message of a dead-letter queue. Messages the broker put there itself (a quorum queue's
 * delivery limit exceeded) have none of our headers: their details come from `x-death`, and their id
 * from the message id, so that it stays the same from one listing to the next.
 */
export function toDeadLetter(msg: GetMessage): DeadLetter {
  const p: MessageProperties = msg.properties;
  const h: Record<string, unknown> = { ...(p.headers ?? {}) };
  const death = firstDeath(h);
  const deadAt = dateOr(h[DeadLetterHeaders.AT]) ?? death.time ?? new Date(0);
  const messageId = stringOr(p.messageId) ?? '';
  const brokerDead = h[DeadLetterHeaders.ID] === undefined;
  const reason = FAILURE_REASONS.includes(h[DeadLetterHeaders.REASON] as FailureReason)
    ? (h[DeadLetterHeaders.REASON] as FailureReason)
    : brokerDead
      ? 'delivery-limit'
      : 'max-attempts';
  return {
    id:
      stringOr(h[DeadLetterHeaders.ID]) ??
      `broker:${messageId || msg.fields.deliveryTag}:${deadAt.getTime()}`,
    messageId,
    correlationId: stringOr(p.correlationId),
    topic: stringOr(h[MessagingHeaders.TOPIC]) ?? death.routingKey ?? msg.fields.routingKey,
    queue: stringOr(h[DeadLetterHeaders.QUEUE]) ?? death.queue ?? '',
    body: msg.content,
    contentType: stringOr(p.contentType),
    headers: originalHeaders(h),
    reason,
    error:
      stringOr(h[DeadLetterHeaders.ERROR]) ??
      (brokerDead ? `dead-lettered by the broker (${death.reason ?? 'unknown'})` : ''),
    errorClass:
      stringOr(h[DeadLetterHeaders.ERROR_CLASS]) ??
      (brokerDead ? 'DeliveryLimitExceeded' : 'Error'),
    attempts: parseAttempt(h[DeadLetterHeaders.ATTEMPTS] ?? h[MessagingHeaders.ATTEMPT]),
    firstFailedAt: dateOr(h[MessagingHeaders.FIRST_FAILURE]) ?? deadAt,
    lastFailedAt: dateOr(h[MessagingHeaders.LAST_FAILURE]) ?? deadAt,
    deadLetteredAt: deadAt,
  };
}

/** The original headers of a message: without the library's retry/dead-letter headers and the broker's. */
export function originalHeaders(
  headers: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const out = withoutBrokerHeaders(headers);
  for (const name of RETRY_HEADERS) delete out[name];
  return out;
}

function withoutBrokerHeaders(headers: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(headers))
    if (!BROKER_HEADERS.test(key)) out[key] = value;
  return out;
}

interface DeathInfo {
  queue?: string;
  reason?: string;
  routingKey?: string;
  time?: Date;
}

function firstDeath(headers: Record<string, unknown>): DeathInfo {
  const deaths = headers['x-death'];
  const last = Array.isArray(deaths)
    ? (deaths[deaths.length - 1] as Record<string, unknown> | undefined)
    : undefined;
  if (!last) return {};
  const keys = last['routing-keys'];
  const time = last.time as { value?: number } | number | undefined;
  const seconds = typeof time === 'number' ? time : time?.value;
  return {
    queue: stringOr(last.queue),
    reason: stringOr(last.reason),
    routingKey: Array.isArray(keys) ? stringOr(keys[0]) : undefined,
    time: typeof seconds === 'number' ? new Date(seconds * 1000) : undefined,
  };
}

function stringOr(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function dateOr(value: unknown): Date | undefined {
  if (typeof value !== 'string') return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}
