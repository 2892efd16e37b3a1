/**
 * What fits in the headers of one message this backend publishes, and how a retry copy or a dead
 * letter that would not fit is cut down to fit.
 *
 * | limit                                                  | past it                                 |
 * | ------------------------------------------------------ | --------------------------------------- |
 * | amqplib encodes a message's headers (an AMQP field     | `publish()` throws, nothing is sent     |
 * | table) in a 64 KiB buffer: {@link MAX_HEADER_TABLE_BYTES} |                                       |
 * | the content header frame must fit the connection's     | the broker closes the connection; below |
 * | `frame_max` (RabbitMQ's default: 128 KiB)              | the 64 KiB it never comes into play     |
 *
 * A message another client sent with headers near 64 KiB is delivered whole, and then its retry copy
 * or dead letter, which adds about 1.5 KiB of failure headers, cannot be published. Requeueing it
 * would run its handler again and again until the broker's delivery limit parked it. So:
 *
 * | settlement  | copy too large                                                                  |
 * | ----------- | ------------------------------------------------------------------------------- |
 * | dead-letter | dead-lettered without its largest headers, the library's (`x-messaging-*`) kept |
 * |             | (the codec's compression mark with them), until it fits; the names and sizes of |
 * |             | what was dropped in {@link DROPPED_HEADERS}; the body is untouched              |
 * | retry       | dead-lettered that way at once: a retry without some of its headers would run   |
 * |             | the handler on a message other than the one sent                                |
 *
 * The sizes are the AMQP 0-9-1 field-table encoding as amqplib writes it.
 */
import { MessagingHeaders, truncateUtf8 } from '../../backend/message-headers';
import { DEAD_LETTER_ORDER_HEADER } from './amqp-dead-letter-order';

/** Most bytes of the encoded headers of a message (amqplib's encoding buffer). */
export const MAX_HEADER_TABLE_BYTES = 65_536;

/** Header of a copy cut down to fit: what was dropped from it, and why. */
export const DROPPED_HEADERS = 'x-messaging-dropped-headers';

/** Headers never dropped to make a copy fit: the library's own. */
const KEPT: ReadonlySet<string> = new Set([
  ...Object.values(MessagingHeaders),
  DEAD_LETTER_ORDER_HEADER,
  DROPPED_HEADERS,
]);

/** Bytes of the value types amqplib writes for `{ '!': type, value }`, tag included. */
const TYPED_BYTES: Readonly<Record<string, number>> = {
  timestamp: 9,
  double: 9,
  float64: 9,
  long: 9,
  int64: 9,
  float: 5,
  int: 5,
  int32: 5,
  unsignedint: 5,
  uint32: 5,
  short: 3,
  int16: 3,
  unsignedshort: 3,
  uint16: 3,
  byte: 2,
  int8: 2,
  unsignedbyte: 2,
  uint8: 2,
  decimal: 6,
  boolean: 2,
};

/** Bytes of `table` encoded as an AMQP field table: its length, then each entry. */
export function fieldTableBytes(table: Readonly<Record<string, unknown>>): number {
  let bytes = 4;
  for (const name in table) bytes += entryBytes(name, table[name]);
  return bytes;
}

/** Bytes of one entry of a field table (none for an `undefined` value, which amqplib skips). */
export function entryBytes(name: string, value: unknown): number {
  return value === undefined ? 0 : 1 + Buffer.byteLength(name) + valueBytes(value);
}

function valueBytes(value: unknown): number {
  if (typeof value === 'string') return 5 + Buffer.byteLength(value);
  if (typeof value === 'number') return numberBytes(value);
  if (typeof value === 'boolean') return 2;
  if (value === null) return 1;
  // amqplib refuses anything else that is not an object (a bigint, a function): count it as a long.
  if (typeof value !== 'object') return 9;
  if (Buffer.isBuffer(value)) return 5 + value.length;
  if (Array.isArray(value)) return value.reduce((sum: number, v) => sum + valueBytes(v), 5);
  if (Object.hasOwn(value, '!')) {
    const { '!': type, value: typed } = value as { '!': unknown; value: unknown };
    if (typeof type === 'string' && type in TYPED_BYTES) return TYPED_BYTES[type];
    if (type === 'string') return valueBytes(String(typed));
  }
  return 1 + fieldTableBytes(value as Record<string, unknown>);
}

/** A number as amqplib encodes it: the smallest signed integer that holds it, else a double. */
function numberBytes(n: number): number {
  const floating = n >= 2 ** 63 || (Math.abs(n) < 2 ** 50 && Math.floor(n) !== n);
  if (floating) return 9;
  if (n >= -128 && n < 128) return 2;
  if (n >= -32_768 && n < 32_768) return 3;
  return n >= -(2 ** 31) && n < 2 ** 31 ? 5 : 9;
}

/** A header left out of a copy, and its size in the encoded headers. */
export interface DroppedHeader {
  readonly name: string;
  readonly bytes: number;
}

/**
 * `headers` as they fit in `limit` bytes: unchanged when they do; else without the largest headers
 * that are not the library's, one at a time, until they fit with {@link DROPPED_HEADERS} set to
 * `describe(dropped)` (at most 1 KiB). When even every such header is not enough, all of them go:
 * the publish then reports what is still too large.
 */
export function fitHeaders(
  headers: Readonly<Record<string, unknown>>,
  describe: (dropped: readonly DroppedHeader[]) => string,
  limit: number = MAX_HEADER_TABLE_BYTES,
): { headers: Record<string, unknown>; dropped: DroppedHeader[] } {
  let bytes = fieldTableBytes(headers);
  if (bytes <= limit) return { headers: { ...headers }, dropped: [] };
  const candidates = Object.keys(headers)
    .filter((name) => !KEPT.has(name) && headers[name] !== undefined)
    .map((name) => ({ name, bytes: entryBytes(name, headers[name]) }))
    .sort((a, b) => b.bytes - a.bytes);
  const fitted: Record<string, unknown> = { ...headers };
  const dropped: DroppedHeader[] = [];
  bytes -= entryBytes(DROPPED_HEADERS, headers[DROPPED_HEADERS]);
  for (const candidate of candidates) {
    delete fitted[candidate.name];
    dropped.push(candidate);
    bytes -= candidate.bytes;
    fitted[DROPPED_HEADERS] = truncateUtf8(describe(dropped));
    if (bytes + entryBytes(DROPPED_HEADERS, fitted[DROPPED_HEADERS]) <= limit) break;
  }
  return { headers: fitted, dropped };
}

/** `big (63012 bytes), trace (812 bytes)`: the headers dropped, as {@link DROPPED_HEADERS} lists them. */
export function listDropped(dropped: readonly DroppedHeader[]): string {
  return dropped.map((header) => `${header.name} (${header.bytes} bytes)`).join(', ');
}
