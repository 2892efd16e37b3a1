/**
 * Pure conversions between stream entries and the backend contract's types. An entry is a flat list
 * of named fields, readable by any Redis client (a plain producer in another language writes
 * `XADD <prefix>:q:<queue> * body '...'`):
 *
 * | field              | value                                                                 |
 * | ------------------ | --------------------------------------------------------------------- |
 * | `body`             | the body, bytes as they are                                           |
 * | `headers`          | JSON object of the headers; left out when there are none              |
 * | `ce-…`             | CloudEvents attributes: a publish writes its `ce-` headers as fields  |
 * |                    | of their own, not in `headers`; read back as headers, a field winning |
 * |                    | over a `headers` entry of its name (`redis-cloudevents.ts`)           |
 * | `message-id`, `correlation-id`, `content-type`, `content-encoding`, `reply-to` | properties |
 * | `timestamp`        | epoch ms at which the message was created; left out by a publish that |
 * |                    | adds its entry at once, whose entry id carries Redis's time of the add |
 * | `kind`             | `retry`, `replay` or `requeue`: a copy the library made (never set by a publish); a `requeue` is read as redelivered |
 * | `topic`, `attempt` | on copies only: the original topic and the attempt of this delivery   |
 *
 * The attempt and topic of a copy come from its fields, never from headers, which anyone can write.
 * The two fields a publish leaves out cost it two arguments of four each (an `XADD` is built per
 * message, and ioredis copies, measures and writes every argument); a reader takes a missing
 * `headers` as none, as it must for plain producers, and a missing `timestamp` from the entry id.
 */
import type { DeadLetter, Delivery, OutgoingMessage } from '../../backend/broker-backend.interface';
import { isUtf8 } from 'node:buffer';
import { readDeadLetter, replayHeaders } from '../../backend/message-headers';
import {
  hasCloudEventsHeader,
  isCloudEventsName,
  pushHeaderFields,
  withCloudEventsFields,
} from './redis-cloudevents';

/** Largest body sent as text by {@link bodyArgument}; a larger one is cheaper to copy as bytes. */
export const TEXT_BODY_MAX = 4_096;

/**
 * A body as a command argument: as text when it is valid UTF-8 (what the JSON codec writes) and at
 * most {@link TEXT_BODY_MAX} bytes, else as the bytes it is. Redis stores the same bytes either way,
 * but ioredis builds a command with a `Buffer` argument by copying every argument into a new
 * `Buffer`, and one of strings as one string: several microseconds less per small message (for a
 * large body, decoding it costs more than the copy).
 */
export function bodyArgument(body: Buffer): string | Buffer {
  return body.length <= TEXT_BODY_MAX && isUtf8(body) ? body.toString('utf8') : body;
}

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

/**
 * The fields of a message added later than it is published (a delayed one, or by a script): with
 * its `timestamp`, which its entry id would not tell.
 */
export function publishFields(message: OutgoingMessage, replyTo?: string): EntryFields {
  const fields = pushPublishFields<EntryFields>([], message, replyTo);
  fields.push('timestamp', String(message.timestamp));
  return fields;
}

/**
 * Appends the fields of a message published at once to `args` (an `XADD` command being built, so
 * that a publish allocates one argument list) and returns it: no `timestamp` (its entry id's time)
 * and no `headers` when there are none; `ce-` headers as fields of their own.
 */
export function pushPublishFields<T extends Array<string | Buffer | number>>(
  args: T,
  message: OutgoingMessage,
  replyTo?: string,
): T {
  args.push('body', bodyArgument(message.body), 'message-id', message.messageId);
  const { headers } = message;
  if (hasCloudEventsHeader(headers)) pushHeaderFields(args, headers);
  else if (hasKeys(headers)) args.push('headers', JSON.stringify(headers));
  if (message.correlationId !== undefined) args.push('correlation-id', message.correlationId);
  if (message.contentType !== undefined) args.push('content-type', message.contentType);
  if (message.contentEncoding !== undefined) args.push('content-encoding', message.contentEncoding);
  if (replyTo !== undefined) args.push('reply-to', replyTo);
  return args;
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
    ...storedFields(delivery, headers),
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

/** What every copy of `delivery` stores first: its body, its headers as stamped, its message id. */
function storedFields(delivery: Delivery, headers: Readonly<Record<string, unknown>>): EntryFields {
  return [
    'body',
    bodyArgument(delivery.body),
    'headers',
    JSON.stringify(headers),
    'message-id',
    delivery.messageId,
  ];
}

/** The fields of a dead letter of `delivery`, with the headers `deadLetterHeaders()` stamped. */
export function deadLetterFields(
  delivery: Delivery,
  headers: Readonly<Record<string, unknown>>,
): EntryFields {
  const fields = storedFields(delivery, headers);
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
 * The {@link Delivery} of entry `entryId` (its raw field list, as Redis returns it) read from `source`
 * for `queue`. A message on a topic stream is a first attempt of that topic, whatever its headers
 * claim; only a copy on a queue stream carries an attempt and original topic. An entry without a
 * `message-id` (a plain producer) is identified by its stream and entry id. The last value of a
 * repeated field wins. (No {@link FieldMap}: this runs for every message; only a field name it does
 * not know pays the `ce-` check.)
 */
export function toDelivery(
  raw: readonly Buffer[],
  source: EntrySource,
  queue: string,
  entryId: string,
  redelivered: boolean,
): Delivery {
  let body: Buffer | undefined;
  let headers: Buffer | undefined;
  let messageId: Buffer | undefined;
  let correlationId: Buffer | undefined;
  let contentType: Buffer | undefined;
  let contentEncoding: Buffer | undefined;
  let replyTo: Buffer | undefined;
  let timestamp: Buffer | undefined;
  let kind: Buffer | undefined;
  let topic: Buffer | undefined;
  let attempt: Buffer | undefined;
  let cloudEvents: Buffer[] | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const value = raw[i + 1];
    const name = raw[i].toString('latin1');
    switch (name) {
      case 'body':
        body = value;
        break;
      case 'headers':
        headers = value;
        break;
      case 'message-id':
        messageId = value;
        break;
      case 'correlation-id':
        correlationId = value;
        break;
      case 'content-type':
        contentType = value;
        break;
      case 'content-encoding':
        contentEncoding = value;
        break;
      case 'reply-to':
        replyTo = value;
        break;
      case 'timestamp':
        timestamp = value;
        break;
      case 'kind':
        kind = value;
        break;
      case 'topic':
        topic = value;
        break;
      case 'attempt':
        attempt = value;
        break;
      default:
        if (isCloudEventsName(name)) (cloudEvents ??= []).push(raw[i], value);
    }
  }
  const copyKind = source.kind === 'q' ? textOf(kind) : undefined;
  const copy = copyKind !== undefined;
  // No field: the time Redis added the entry (`<ms>-<seq>`), as for a plain producer's.
  const time = timestamp !== undefined ? Number(textOf(timestamp)) : parseInt(entryId, 10);
  return {
    body: body ?? Buffer.alloc(0),
    topic: copy ? (textOf(topic) ?? source.name) : source.name,
    queue,
    headers: withCloudEventsFields(parseHeaders(textOf(headers)), cloudEvents),
    messageId: textOf(messageId) ?? `${source.kind}:${source.name}:${entryId}`,
    correlationId: textOf(correlationId),
    contentType: textOf(contentType),
    contentEncoding: textOf(contentEncoding),
    replyTo: textOf(replyTo),
    timestamp: Number.isFinite(time) && time > 0 ? time : undefined,
    attempt: copy ? attemptField(textOf(attempt)) : 1,
    // A requeued copy was delivered before, as a message a closing AMQP channel hands back is.
    redelivered: redelivered || copyKind === 'requeue',
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

/** The headers of an entry read by name: its `headers` field with its `ce-` fields. */
function headersOf(fields: FieldMap): Record<string, unknown> {
  const headers = parseHeaders(text(fields, 'headers'));
  for (const [name, value] of fields)
    if (isCloudEventsName(name)) headers[name] = value.toString('utf8');
  return headers;
}

function parseHeaders(raw: string | undefined): Record<string, unknown> {
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
  return textOf(fields.get(name));
}

function textOf(value: Buffer | undefined): string | undefined {
  if (value === undefined || value.length === 0) return undefined;
  return value.toString('utf8');
}

function hasKeys(headers: Readonly<Record<string, unknown>>): boolean {
  for (const _ in headers) return true;
  return false;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
