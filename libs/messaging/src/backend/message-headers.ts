/**
 * The headers the library writes on messages, and the helpers every backend uses to stamp a retry
 * copy or a dead letter and to read them back. A backend that uses these gets attempt counting, the
 * failure metadata of dead letters and replay right without writing any header itself.
 *
 * | header                              | on                      | value                                     |
 * | ----------------------------------- | ----------------------- | ----------------------------------------- |
 * | `x-messaging-attempt`               | retry copy, dead letter | attempt of the next delivery / attempts made |
 * | `x-messaging-first-failure`         | retry copy, dead letter | ISO time of the first failed attempt      |
 * | `x-messaging-last-failure`          | retry copy, dead letter | ISO time of the last failed attempt       |
 * | `x-messaging-last-error`            | retry copy, dead letter | last error message (at most 1 KiB)        |
 * | `x-messaging-topic`                 | retry/delay copy, dead letter, replay | the original topic          |
 * | `x-messaging-dead-letter-id`        | dead letter             | unique id of the dead letter              |
 * | `x-messaging-dead-letter-reason`    | dead letter             | a `FailureReason`                         |
 * | `x-messaging-dead-letter-error-class` | dead letter           | the error's class name                    |
 * | `x-messaging-dead-letter-queue`     | dead letter             | the queue the message failed on           |
 * | `x-messaging-dead-letter-at`        | dead letter             | ISO time it was dead-lettered             |
 * | `x-messaging-compression`           | any                     | `gzip` when the codec compressed the body |
 * | `x-messaging-error`                 | reply                   | the handler's error class (a failed request) |
 * | `x-messaging-deadline`              | request                 | epoch ms after which its caller no longer waits |
 * | `x-messaging-ordering-key`          | any                     | `publish()`'s `orderingKey`: ordered handlers take one message of a key at a time |
 * | `x-messaging-version`               | any                     | the message's version (an integer ≥ 1; absent = 1): `@Producer({ version })`, `publish(..., { version })` |
 */
import { randomUUID } from 'node:crypto';
import type { FailureInfo, FailureReason } from '../errors/failure';
import type { DeadLetter, Delivery } from './broker-backend.interface';

/** Header names the library reserves (every `x-messaging-*` name is). */
export const MessagingHeaders = {
  /** The attempt number of this delivery (1 on the first), set on each retry copy. */
  ATTEMPT: 'x-messaging-attempt',
  /** ISO time of the first failed attempt, set on the first retry. */
  FIRST_FAILURE: 'x-messaging-first-failure',
  /** ISO time of the last failed attempt, set on each retry. */
  LAST_FAILURE: 'x-messaging-last-failure',
  /** The last error message, set on each retry (truncated to 1 KiB). */
  LAST_ERROR: 'x-messaging-last-error',
  /** The original topic of a message that travelled through a delay or retry queue. */
  TOPIC: 'x-messaging-topic',
  /** Unique id of a dead letter. */
  DEAD_LETTER_ID: 'x-messaging-dead-letter-id',
  /** Why a message was dead-lettered (a `FailureReason`). */
  DEAD_LETTER_REASON: 'x-messaging-dead-letter-reason',
  /** Class name of the error that dead-lettered a message. */
  DEAD_LETTER_ERROR_CLASS: 'x-messaging-dead-letter-error-class',
  /** The queue a dead letter failed on, where a replay sends it back. */
  DEAD_LETTER_QUEUE: 'x-messaging-dead-letter-queue',
  /** ISO time a message was dead-lettered. */
  DEAD_LETTER_AT: 'x-messaging-dead-letter-at',
  /** `gzip` when the body is compressed by the codec. */
  COMPRESSION: 'x-messaging-compression',
  /** Set on a reply that carries a handler error instead of a result. */
  REPLY_ERROR: 'x-messaging-error',
  /** Epoch milliseconds after which the caller of a request no longer waits: it is skipped then. */
  DEADLINE: 'x-messaging-deadline',
  /** The `orderingKey` of a publish: an ordered handler takes one message of a key at a time. */
  ORDERING_KEY: 'x-messaging-ordering-key',
  /**
   * The version of the message's payload (an integer from 1; absent means 1), set by
   * `@Producer({ version })` or `publish(..., { version })`: a handler of another version upcasts it.
   */
  VERSION: 'x-messaging-version',
} as const;

/** The highest message version (`x-messaging-version`) a producer may stamp or a handler take. */
export const MAX_MESSAGE_VERSION = 1_000_000;

/** Headers a retry or dead letter adds; removed again before a replay and from `DeadLetter.headers`. */
const FAILURE_HEADERS: readonly string[] = [
  MessagingHeaders.ATTEMPT,
  MessagingHeaders.FIRST_FAILURE,
  MessagingHeaders.LAST_FAILURE,
  MessagingHeaders.LAST_ERROR,
  MessagingHeaders.TOPIC,
  MessagingHeaders.DEAD_LETTER_ID,
  MessagingHeaders.DEAD_LETTER_REASON,
  MessagingHeaders.DEAD_LETTER_ERROR_CLASS,
  MessagingHeaders.DEAD_LETTER_QUEUE,
  MessagingHeaders.DEAD_LETTER_AT,
  // Written by builds before the headers above replaced them; dead letters parked then may carry them.
  'x-messaging-dead-letter-error',
  'x-messaging-dead-letter-attempts',
];

/** Every `FailureReason`: what a dead letter's reason header may say. */
export const FAILURE_REASONS: readonly FailureReason[] = [
  'handler-error',
  'max-attempts',
  'unrecoverable',
  'validation',
  'malformed',
  'delivery-limit',
];

/** Longest error text carried in a header, in UTF-8 bytes (headers share a 64 KiB frame). */
export const MAX_ERROR_BYTES = 1024;

type Headers = Readonly<Record<string, unknown>>;

/**
 * The attempt of a delivery, from its `x-messaging-attempt` header: an integer in 1..1e6, else 1
 * (headers come from anyone who can publish).
 */
export function attemptOf(headers: Headers): number {
  const value = headers[MessagingHeaders.ATTEMPT];
  if (value === undefined) return 1;
  const n = typeof value === 'string' && /^\d{1,7}$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 1_000_000 ? n : 1;
}

/**
 * `headers` without the library's reserved `x-messaging-*` names: what an application may send. The
 * library alone writes them (attempts, failure details, the topic of a copy), so a sender cannot
 * claim an attempt or rewrite a topic. The same object when it holds none.
 */
export function withoutReservedHeaders<T extends Headers>(headers: T): T {
  let out: Record<string, unknown> | undefined;
  for (const name in headers) {
    if (!name.startsWith(RESERVED_PREFIX)) continue;
    out ??= { ...headers };
    delete out[name];
  }
  return (out ?? headers) as T;
}

const RESERVED_PREFIX = 'x-messaging-';

/** The message's ordering key (`publish(..., { orderingKey })`), if it has one. */
export function orderingKeyOf(headers: Headers): string | undefined {
  const key = headers[MessagingHeaders.ORDERING_KEY];
  return typeof key === 'string' ? key : undefined;
}

/**
 * The version a message was sent as, from its `x-messaging-version` header: 1 when it has none, the
 * integer (a number, or its digits as a string: NATS or a foreign producer) when it is one from 1 to
 * {@link MAX_MESSAGE_VERSION}, else `undefined` (unreadable: headers come from anyone who publishes).
 */
export function versionOf(headers: Headers): number | undefined {
  const value = headers[MessagingHeaders.VERSION];
  if (value === undefined) return 1;
  const n = typeof value === 'string' && /^\d{1,7}$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= MAX_MESSAGE_VERSION
    ? n
    : undefined;
}

/** Whether a request's caller stopped waiting: its `x-messaging-deadline` is past. */
export function isExpiredRequest(headers: Headers, now: number): boolean {
  const deadline = headers[MessagingHeaders.DEADLINE];
  return typeof deadline === 'number' && deadline <= now;
}

/** The original topic: the `x-messaging-topic` header of a copy, else the topic it was routed by. */
export function topicOf(headers: Headers, routedBy: string): string {
  const topic = headers[MessagingHeaders.TOPIC];
  return typeof topic === 'string' && topic.length > 0 ? topic : routedBy;
}

/**
 * Headers of the copy a backend publishes to carry out a `retry` settlement of `delivery`: the next
 * attempt, the failure times and error, the original topic. `headers` are the delivery's headers a
 * backend keeps (without its broker's own, such as AMQP's `x-death`).
 */
export function retryHeaders(
  delivery: Delivery,
  failure: FailureInfo,
  headers: Headers = delivery.headers,
): Record<string, unknown> {
  return {
    ...headers,
    ...failureTimes(delivery, failure),
    [MessagingHeaders.ATTEMPT]: delivery.attempt + 1,
    [MessagingHeaders.TOPIC]: delivery.topic,
  };
}

/**
 * Headers of the dead letter of `delivery`, which a backend keeps with the original body and
 * properties; {@link readDeadLetter} turns them back into a `DeadLetter`.
 */
export function deadLetterHeaders(
  delivery: Delivery,
  failure: FailureInfo,
  headers: Headers = delivery.headers,
  now: Date = new Date(),
): Record<string, unknown> {
  return {
    ...headers,
    ...failureTimes(delivery, failure),
    [MessagingHeaders.ATTEMPT]: failure.attempts ?? delivery.attempt,
    [MessagingHeaders.TOPIC]: delivery.topic,
    [MessagingHeaders.DEAD_LETTER_ID]: randomUUID(),
    [MessagingHeaders.DEAD_LETTER_REASON]: failure.reason,
    [MessagingHeaders.DEAD_LETTER_ERROR_CLASS]: truncateUtf8(failure.errorClass, 256),
    [MessagingHeaders.DEAD_LETTER_QUEUE]: delivery.queue,
    [MessagingHeaders.DEAD_LETTER_AT]: now.toISOString(),
  };
}

/** A message as a backend stored it: body, properties and headers. */
export interface StoredMessage {
  readonly body: Buffer;
  readonly headers: Headers;
  readonly messageId?: string;
  readonly correlationId?: string;
  readonly contentType?: string;
  readonly contentEncoding?: string;
}

/**
 * Reads a dead letter written with {@link deadLetterHeaders}; `undefined` when the message carries
 * no dead-letter id (the broker dead-lettered it itself: the backend reads its own headers then).
 */
export function readDeadLetter(stored: StoredMessage): DeadLetter | undefined {
  const h = stored.headers;
  const id = stringOr(h[MessagingHeaders.DEAD_LETTER_ID]);
  if (id === undefined) return undefined;
  const deadAt = dateOr(h[MessagingHeaders.DEAD_LETTER_AT]) ?? new Date(0);
  const reason = h[MessagingHeaders.DEAD_LETTER_REASON] as FailureReason;
  return {
    id,
    messageId: stored.messageId ?? '',
    correlationId: stored.correlationId,
    topic: stringOr(h[MessagingHeaders.TOPIC]) ?? '',
    queue: stringOr(h[MessagingHeaders.DEAD_LETTER_QUEUE]) ?? '',
    body: stored.body,
    contentType: stored.contentType,
    contentEncoding: stored.contentEncoding,
    headers: producerHeaders(h),
    reason: FAILURE_REASONS.includes(reason) ? reason : 'max-attempts',
    error: stringOr(h[MessagingHeaders.LAST_ERROR]) ?? '',
    errorClass: stringOr(h[MessagingHeaders.DEAD_LETTER_ERROR_CLASS]) ?? 'Error',
    attempts: attemptOf(h),
    firstFailedAt: dateOr(h[MessagingHeaders.FIRST_FAILURE]) ?? deadAt,
    lastFailedAt: dateOr(h[MessagingHeaders.LAST_FAILURE]) ?? deadAt,
    deadLetteredAt: deadAt,
  };
}

/** Headers of a replayed dead letter: its producer's headers and its topic; a first attempt again. */
export function replayHeaders(letter: DeadLetter): Record<string, unknown> {
  return { ...letter.headers, [MessagingHeaders.TOPIC]: letter.topic };
}

/** The headers as the producer set them: without the library's retry and dead-letter headers. */
export function producerHeaders(headers: Headers): Record<string, unknown> {
  const out: Record<string, unknown> = { ...headers };
  for (const name of FAILURE_HEADERS) delete out[name];
  return out;
}

/** Truncates `text` to at most `maxBytes` UTF-8 bytes without splitting a character. */
export function truncateUtf8(text: string, maxBytes = MAX_ERROR_BYTES): string {
  if (text.length * 3 <= maxBytes) return text;
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  return bytes
    .subarray(0, maxBytes)
    .toString('utf8')
    .replace(/\uFFFD+$/, '');
}

function failureTimes(delivery: Delivery, failure: FailureInfo): Record<string, unknown> {
  const at = failure.at.toISOString();
  const first = failure.firstAt?.toISOString() ?? delivery.headers[MessagingHeaders.FIRST_FAILURE];
  return {
    [MessagingHeaders.FIRST_FAILURE]: typeof first === 'string' ? first : at,
    [MessagingHeaders.LAST_FAILURE]: at,
    [MessagingHeaders.LAST_ERROR]: truncateUtf8(failure.message),
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
