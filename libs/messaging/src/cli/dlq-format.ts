/**
 * How `nest-messaging dlq` prints dead letters: as table rows, as one letter in full, and as JSON
 * for scripts. Pure.
 */
import type { DeadLetter } from '../backend/broker-backend.interface';
import type { MessageCodec } from '../codec/message-codec';
import type { ErrorGroup } from './dlq-filters';
import { renderFields, renderTable, type TableColumn } from './table';

/** A dead letter as `--json` prints it: dates as ISO strings, the body decoded. */
export interface DeadLetterView {
  readonly id: string;
  readonly messageId: string;
  readonly correlationId?: string;
  readonly topic: string;
  readonly queue: string;
  readonly reason: string;
  readonly errorClass: string;
  readonly error: string;
  readonly attempts: number;
  readonly firstFailedAt: string;
  readonly lastFailedAt: string;
  readonly deadLetteredAt: string;
  readonly contentType?: string;
  readonly contentEncoding?: string;
  readonly headers: Readonly<Record<string, unknown>>;
  /** The body decoded as its handler would have seen it; its text when it cannot be decoded. */
  readonly payload: unknown;
  /** `base64` when the body is bytes, given as base64 in `payload`. */
  readonly payloadEncoding?: 'base64';
}

/**
 * The body of a dead letter decoded the way `DeadLetterService.list()` does: by the codec, or as
 * UTF-8 text when it cannot be decoded (a malformed message).
 */
export function decodePayload(codec: MessageCodec, letter: DeadLetter): unknown {
  try {
    return codec.decode(letter);
  } catch {
    return letter.body.toString('utf8');
  }
}

/** The JSON view of a dead letter. */
export function toView(codec: MessageCodec, letter: DeadLetter): DeadLetterView {
  const payload = decodePayload(codec, letter);
  const binary = Buffer.isBuffer(payload);
  return {
    id: letter.id,
    messageId: letter.messageId,
    correlationId: letter.correlationId,
    topic: letter.topic,
    queue: letter.queue,
    reason: letter.reason,
    errorClass: letter.errorClass,
    error: letter.error,
    attempts: letter.attempts,
    firstFailedAt: isoTime(letter.firstFailedAt),
    lastFailedAt: isoTime(letter.lastFailedAt),
    deadLetteredAt: isoTime(letter.deadLetteredAt),
    contentType: letter.contentType,
    contentEncoding: letter.contentEncoding,
    headers: plainHeaders(letter.headers),
    payload: binary ? payload.toString('base64') : payload,
    ...(binary ? { payloadEncoding: 'base64' as const } : {}),
  };
}

/** Header values JSON can carry: bytes as text, dates as ISO strings. */
function plainHeaders(headers: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const plain = (value: unknown): unknown => {
    if (Buffer.isBuffer(value)) return value.toString('utf8');
    if (value instanceof Date) return isoTime(value);
    if (typeof value === 'bigint') return value.toString();
    if (Array.isArray(value)) return value.map(plain);
    if (value !== null && typeof value === 'object')
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
    return value;
  };
  return plain(headers) as Record<string, unknown>;
}

/** A date as ISO 8601, or `invalid` for a date that is not one (rather than throwing). */
function isoTime(date: Date): string {
  return Number.isNaN(date.getTime()) ? 'invalid' : date.toISOString();
}

/** A date for a table, to the second, in UTC: `2025-03-01 14:05:09Z`. */
export function tableTime(date: Date): string {
  const iso = isoTime(date);
  return iso === 'invalid' ? iso : `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z`;
}

/**
 * One JSON document, indented. C1 control characters are escaped too (JSON.stringify leaves them),
 * so the document is safe to print on a terminal; it parses to the same value.
 */
export function toJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(
    /[\u007f-\u009f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

const LETTER_COLUMNS: readonly TableColumn[] = [
  { header: 'ID' },
  { header: 'DEAD-LETTERED' },
  { header: 'TOPIC', maxWidth: 40 },
  { header: 'REASON' },
  { header: 'ATTEMPTS', align: 'right' },
  { header: 'ERROR', maxWidth: 60 },
];

/** Dead letters as a table, one line each. */
export function letterTable(letters: readonly DeadLetter[]): string[] {
  return renderTable(
    LETTER_COLUMNS,
    letters.map((l) => [
      l.id,
      tableTime(l.deadLetteredAt),
      l.topic,
      l.reason,
      String(l.attempts),
      `${l.errorClass}: ${l.error}`,
    ]),
  );
}

const GROUP_COLUMNS: readonly TableColumn[] = [
  { header: 'COUNT', align: 'right' },
  { header: 'FIRST SEEN' },
  { header: 'LAST SEEN' },
  { header: 'TOPICS', maxWidth: 40 },
  { header: 'ERROR', maxWidth: 80 },
];

/** Error groups as a table, one line each; more than three topics are counted. */
export function groupTable(groups: readonly ErrorGroup[]): string[] {
  return renderTable(
    GROUP_COLUMNS,
    groups.map((g) => [
      String(g.count),
      tableTime(g.firstSeen),
      tableTime(g.lastSeen),
      g.topics.length > 3
        ? `${g.topics.slice(0, 3).join(', ')} +${g.topics.length - 3} more`
        : g.topics.join(', '),
      g.error,
    ]),
  );
}

/** The JSON view of an error group. */
export function groupView(group: ErrorGroup): Record<string, unknown> {
  return {
    ...group,
    firstSeen: isoTime(group.firstSeen),
    lastSeen: isoTime(group.lastSeen),
  };
}

/** One dead letter in full: its fields, its headers, its payload pretty-printed. */
export function letterDetails(view: DeadLetterView): string[] {
  const optional = (label: string, value: string | undefined): [string, string][] =>
    value === undefined ? [] : [[label, value]];
  const fields: [string, string][] = [
    ['id', view.id],
    ['message id', view.messageId],
    ...optional('correlation id', view.correlationId),
    ['topic', view.topic],
    ['queue', view.queue],
    ['reason', view.reason],
    ['attempts', String(view.attempts)],
    ['first failed', view.firstFailedAt],
    ['last failed', view.lastFailedAt],
    ['dead-lettered', view.deadLetteredAt],
    ...optional('content type', view.contentType),
    ...optional('content encoding', view.contentEncoding),
    ['error', `${view.errorClass}: ${view.error}`],
  ];
  const headers = Object.entries(view.headers);
  const payload =
    typeof view.payload === 'string' && view.payloadEncoding === undefined
      ? view.payload
      : toJson(view.payload);
  return [
    ...renderFields(fields),
    '',
    headers.length === 0 ? 'Headers: none' : 'Headers:',
    ...renderFields(
      headers.map(([k, v]) => [`  ${k}`, typeof v === 'string' ? v : JSON.stringify(v)]),
    ),
    '',
    view.payloadEncoding === 'base64' ? 'Payload (bytes, base64):' : 'Payload:',
    // Cleaned line by line: the payload is untrusted, but its line breaks are worth keeping.
    ...renderFields(payload.split('\n').map((line) => ['', line])),
  ];
}
