/**
 * Message headers as the text NATS carries (`NATS/1.0[ <status>]\r\n<name>: <value>\r\n…\r\n`),
 * written and read without nats.js's `MsgHdrs` in between. Its `set()` and `append()` list, filter
 * and canonicalize every name again (several arrays per header), and reading a received message's
 * headers goes through `append()` for each line: with half a dozen headers a message, that was a
 * fifth of the allocations of a delivery.
 *
 * Both ends lean on how nats.js 3 works, and `nats-pure.spec.ts` checks them against it:
 * - publishing (`publish()`, `respond()`) only calls `encode()` on the headers it is given, so a
 *   {@link WireHeaders} is sent as its text; it is a whole `MsgHdrs` all the same (anything else
 *   turns it into nats.js's own headers first), so a client version that reads or changes the
 *   headers it publishes still gets what it expects;
 * - a received message (`MsgImpl`) keeps its bytes in `_rdata` with the header block's length in
 *   `_msg.hdr`; when a message does not have them, its parsed `headers` are read instead.
 */
import type { Match, Msg, MsgHdrs, MsgImpl } from '@nats-io/transport-node';
import { loadNatsModules } from './nats-connection';

const encoder = new TextEncoder();
const FIRST_LINE = 'NATS/1.0';

/**
 * Headers being written: {@link add} appends a line (names and values are checked by the caller: no
 * CR or LF, no `:` in a name). The `MsgHdrs` methods (for nats.js, never on the hot path) work on
 * nats.js's own headers, parsed from the text the first time one is called.
 */
export class WireHeaders implements MsgHdrs {
  private text = `${FIRST_LINE}\r\n`;
  /** nats.js's headers, once a `MsgHdrs` method was called: from then on, the headers. */
  private parsed?: MsgHdrs & { encode(): Uint8Array };

  /** Adds a header line (the hot path: one string concatenation). */
  add(name: string, value: string): this {
    if (this.parsed) this.parsed.append(name, value);
    else this.text += `${name}: ${value}\r\n`;
    return this;
  }

  /** The header block as NATS sends it. */
  encode(): Uint8Array {
    return this.parsed ? this.parsed.encode() : encoder.encode(`${this.text}\r\n`);
  }

  get hasError(): boolean {
    return this.full().hasError;
  }

  get status(): string {
    return this.full().status;
  }

  get code(): number {
    return this.full().code;
  }

  get description(): string {
    return this.full().description;
  }

  get(k: string, match?: Match): string {
    return this.full().get(k, match);
  }

  set(k: string, v: string, match?: Match): void {
    this.full().set(k, v, match);
  }

  append(k: string, v: string, match?: Match): void {
    this.full().append(k, v, match);
  }

  has(k: string, match?: Match): boolean {
    return this.full().has(k, match);
  }

  keys(): string[] {
    return this.full().keys();
  }

  values(k: string, match?: Match): string[] {
    return this.full().values(k, match);
  }

  delete(k: string, match?: Match): void {
    this.full().delete(k, match);
  }

  last(k: string, match?: Match): string {
    return this.full().last(k, match);
  }

  [Symbol.iterator](): Iterator<[string, string[]]> {
    return this.full()[Symbol.iterator]();
  }

  private full(): MsgHdrs & { encode(): Uint8Array } {
    this.parsed ??= loadNatsModules().transport.MsgHdrsImpl.decode(this.encode());
    return this.parsed;
  }
}

/** Where the headers of a received message are read from: their text, or nats.js's parse. */
export type HeaderSource = string | MsgHdrs | undefined;

/** The header block of `msg` as text (its raw bytes when nats.js kept them), undefined without one. */
export function headersOf(msg: Msg): HeaderSource {
  const raw = msg as Partial<Pick<MsgImpl, '_msg' | '_rdata'>>;
  const length = raw._msg?.hdr;
  if (length === undefined || !(raw._rdata instanceof Uint8Array)) return msg.headers;
  if (length <= 0) return undefined;
  return Buffer.from(raw._rdata.buffer, raw._rdata.byteOffset, length).toString('utf8');
}

/** The status code of a message's headers (`NATS/1.0 503`: no responders), 0 without one. */
export function statusOf(source: HeaderSource): number {
  if (source === undefined) return 0;
  if (typeof source !== 'string') return source.code;
  const end = source.indexOf('\r\n');
  const line = end < 0 ? source : source.slice(0, end);
  return line.length > FIRST_LINE.length ? parseInt(line.slice(FIRST_LINE.length + 1), 10) || 0 : 0;
}

/**
 * Calls `reader.take(name, value)` for each header of `source` in order, each value trimmed as nats.js
 * does (a name given several values: once per value).
 */
export function forEachHeader(
  source: HeaderSource,
  reader: { take(name: string, value: string): void },
): void {
  if (source === undefined) return;
  if (typeof source !== 'string') {
    for (const [name, values] of source) for (const value of values) reader.take(name, value);
    return;
  }
  let start = source.indexOf('\r\n');
  while (start >= 0) {
    start += 2;
    const end = source.indexOf('\r\n', start);
    const line = end < 0 ? source.slice(start) : source.slice(start, end);
    const colon = line.indexOf(':');
    if (colon > 0) reader.take(line.slice(0, colon), line.slice(colon + 1).trim());
    start = end;
  }
}
