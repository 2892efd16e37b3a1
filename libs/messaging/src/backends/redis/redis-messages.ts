/**
 * Pure conversions between stream entries and the backend contract's types. An entry is a flat list
 * of named fields, readable by any Redis client (a plain producer in another language writes
 * `XADD <prefix>:q:<queue> * body '...'`):
 *
 * | field              | value                                                                 |
 * | ------------------ | --------------------------------------------------------------------- |
 * | `body`             | the body, bytes as they are                                           |
 * | `headers`          | JSON object of the headers                                            |
 * | `message-id`, `correlation-id`, `content-type`, `content-encoding`, `reply-to` | properties |
 * | `timestamp`        | epoch ms at which the producer created the message                    |
 * | `kind`             | `retry`, `replay` or `requeue`: a copy the library made (never set by a publish) |
 * | `topic`, `attempt` | on copies only: the original topic and the attempt of this delivery   |
 *
 * The attempt and topic of a copy come from its fields, never from headers, which anyone can write.
 */
import type {
  DeadLetter,
  Delivery,
  IncomingReply,
  OutgoingMessage,
  OutgoingReply,
} from '../../backend/broker-backend.interface';
import { readDeadLetter, replayHeaders } from '../../backend/message-headers';

/** Field/value pairs as `XADD` takes them. */
export type EntryFields = Array<string | Buffer>;

/** The fields of an entry read back, by name. */
export type FieldMap = ReadonlyMap<string, Buffer>;

/** Kinds of copy the library writes to a queue stream. */
export type CopyKind = 'retry' | 'replay' | 'requeue';

/** Where an entry was read: a topic stream or a queue stream. */
export interface EntrySource {
  readonly kind: 't' | 'q';
  /** The topic or queue name. */
  readonly name: string;
}

/** The fields of a published message. */
export function publishFields(message: OutgoingMessage, replyTo?: string): EntryFields {
  const fields: EntryFields = [
    'body',
    message.body,
    'headers',
    JSON.stringify(message.headers),
    'message-id',
    message.messageId,
    'timestamp',
    String(message.timestamp),
  ];
  if (message.correlationId !== undefined) fields.push('correlation-id', message.correlationId);
  if (message.contentType !== undefined) fields.push('content-type', message.contentType);
  if (replyTo !== undefined) fields.push('reply-to', replyTo);
  return fields;
}

/**
 * The fields of a copy of `delivery` (its original body and properties) with `headers`: a retry with
 * the next attempt, or the same delivery put back (`requeue`, which keeps its reply address).
 */
export function copyFields(
  delivery: Delivery,
  headers: Readonly<Record<string, unknown>>,
  kind: CopyKind,
  attempt: number,
): EntryFields {
  const fields: EntryFields = [
    'body',
    delivery.body,
    'headers',
    JSON.stringify(headers),
    'message-id',
    delivery.messageId,
    'kind',
    kind,
    'topic',
    delivery.topic,
    'attempt',
    String(attempt),
  ];
  pushProperties(fields, delivery);
  if (kind === 'requeue' && delivery.replyTo !== undefined)
    fields.push('reply-to', delivery.replyTo);
  return fields;
}

/** The fields of a dead letter of `delivery`, with the headers `deadLetterHeaders()` stamped. */
export function deadLetterFields(
  delivery: Delivery,
  headers: Readonly<Record<string, unknown>>,
): EntryFields {
  const fields: EntryFields = [
    'body',
    delivery.body,
    'headers',
    JSON.stringify(headers),
    'message-id',
    delivery.messageId,
  ];
  pushProperties(fields, delivery);
  return fields;
}

/** The fields of a replayed dead letter: a first attempt of its topic again. */
export function replayFields(letter: DeadLetter, timestamp?: number): EntryFields {
  const fields: EntryFields = [
    'body',
    letter.body,
    'headers',
    JSON.stringify(replayHeaders(letter)),
    'message-id',
    letter.messageId,
    'kind',
    'replay',
    'topic',
    letter.topic,
    'attempt',
    '1',
  ];
  pushProperties(fields, { ...letter, timestamp });
  return fields;
}

function pushProperties(
  fields: EntryFields,
  p: {
    correlationId?: string;
    contentType?: string;
    contentEncoding?: string;
    timestamp?: number;
  },
): void {
  if (p.correlationId !== undefined) fields.push('correlation-id', p.correlationId);
  if (p.contentType !== undefined) fields.push('content-type', p.contentType);
  if (p.contentEncoding !== undefined) fields.push('content-encoding', p.contentEncoding);
  if (p.timestamp !== undefined) fields.push('timestamp', String(p.timestamp));
}

/** An entry's raw field list (as Redis returns it) by name; the last value of a repeated name wins. */
export function fieldMap(raw: readonly Buffer[]): Map<string, Buffer> {
  const map = new Map<string, Buffer>();
  for (let i = 0; i + 1 < raw.length; i += 2) map.set(raw[i].toString('utf8'), raw[i + 1]);
  return map;
}

/**
 * The {@link Delivery} of entry `entryId` read from `source` for `queue`. A message on a topic stream
 * is a first attempt of that topic, whatever its headers claim; only a copy on a queue stream carries
 * an attempt and original topic. An entry without a `message-id` (a plain producer) is identified by
 * its stream and entry id.
 */
export function toDelivery(
  fields: FieldMap,
  source: EntrySource,
  queue: string,
  entryId: string,
  redelivered: boolean,
): Delivery {
  const copy = source.kind === 'q' && text(fields, 'kind') !== undefined;
  const timestamp = Number(text(fields, 'timestamp'));
  return {
    body: fields.get('body') ?? Buffer.alloc(0),
    topic: copy ? (text(fields, 'topic') ?? source.name) : source.name,
    queue,
    headers: headersOf(fields),
    messageId: text(fields, 'message-id') ?? `${source.kind}:${source.name}:${entryId}`,
    correlationId: text(fields, 'correlation-id'),
    contentType: text(fields, 'content-type'),
    contentEncoding: text(fields, 'content-encoding'),
    replyTo: text(fields, 'reply-to'),
    timestamp: Number.isFinite(timestamp) && timestamp > 0 ? timestamp : undefined,
    attempt: copy ? attemptField(text(fields, 'attempt')) : 1,
    redelivered,
  };
}

/** Reads a dead-letter entry; its id is the entry id, so one is found without a scan. */
export function toDeadLetter(fields: FieldMap, entryId: string): DeadLetter {
  const stored = {
    body: fields.get('body') ?? Buffer.alloc(0),
    headers: headersOf(fields),
    messageId: text(fields, 'message-id'),
    correlationId: text(fields, 'correlation-id'),
    contentType: text(fields, 'content-type'),
    contentEncoding: text(fields, 'content-encoding'),
  };
  const letter = readDeadLetter(stored);
  if (letter) return { ...letter, id: entryId };
  // Written there by someone else: keep what can be read.
  const at = new Date(Number(entryId.split('-')[0]));
  return {
    id: entryId,
    messageId: stored.messageId ?? '',
    correlationId: stored.correlationId,
    topic: '',
    queue: '',
    body: stored.body,
    contentType: stored.contentType,
    contentEncoding: stored.contentEncoding,
    headers: stored.headers,
    reason: 'handler-error',
    error: 'written to the dead-letter stream by another client',
    errorClass: 'Error',
    attempts: 1,
    firstFailedAt: at,
    lastFailedAt: at,
    deadLetteredAt: at,
  };
}

/** The timestamp field of an entry, when valid. */
export function timestampOf(fields: FieldMap): number | undefined {
  const value = Number(text(fields, 'timestamp'));
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

/** A reply as sent over pub/sub: JSON, the body in base64. */
export function encodeReply(reply: OutgoingReply): string {
  return JSON.stringify({
    b: reply.body.toString('base64'),
    h: reply.headers,
    ct: reply.contentType,
  });
}

/** Reads a reply sent by {@link encodeReply}; undefined when it is not one. */
export function decodeReply(message: string): IncomingReply | undefined {
  try {
    const parsed = JSON.parse(message) as { b?: unknown; h?: unknown; ct?: unknown };
    if (typeof parsed.b !== 'string') return undefined;
    return {
      body: Buffer.from(parsed.b, 'base64'),
      headers: isPlainObject(parsed.h) ? parsed.h : {},
      contentType: typeof parsed.ct === 'string' ? parsed.ct : undefined,
    };
  } catch {
    return undefined;
  }
}

function headersOf(fields: FieldMap): Record<string, unknown> {
  const raw = text(fields, 'headers');
  if (raw === undefined) return {};
  try {
    const parsed: unknown = JSON.parse(raw);
    return isPlainObject(parsed) ? parsed : {};
  } catch {
    return {};
  }
}

function attemptField(value: string | undefined): number {
  const n = value !== undefined && /^\d{1,7}$/.test(value) ? Number(value) : 1;
  return n >= 1 && n <= 1_000_000 ? n : 1;
}

function text(fields: FieldMap, name: string): string | undefined {
  const value = fields.get(name);
  if (value === undefined || value.length === 0) return undefined;
  return value.toString('utf8');
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
