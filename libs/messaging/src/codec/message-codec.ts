import { brotliDecompressSync, gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import { MessagingHeaders } from '../backend/message-headers';
import { MalformedMessageError, PayloadTooLargeError } from '../errors/messaging.errors';
import { assertSafeJson } from './safe-json';

/** Resolved codec settings (see `CodecOptions` in the module options). */
export interface CodecSettings {
  /** Largest body accepted, before and after decompression. */
  readonly maxBodyBytes: number;
  /** Bodies at least this large are gzip-compressed; `false` never compresses. */
  readonly compressAboveBytes: number | false;
  /** Deepest nesting of arrays and objects accepted in a JSON body. */
  readonly maxJsonDepth: number;
}

/** An encoded body, ready for `OutgoingMessage`. */
export interface EncodedBody {
  readonly body: Buffer;
  readonly contentType: string;
  /** `gzip` when the codec compressed the body (the message's `contentEncoding`), else absent. */
  readonly contentEncoding?: string;
}

/**
 * Wraps a serialized payload before it is size-checked and compressed: how a structured-mode
 * CloudEvent (`cloud-events.ts`) puts the payload inside its envelope.
 */
export type BodyEnvelope = (body: Buffer, contentType: string) => SerializedBody;

/** A payload as bytes and their MIME type, before compression. */
export interface SerializedBody {
  readonly body: Buffer;
  readonly contentType: string;
}

/** What decoding needs of a message (a `Delivery`, a reply, a dead letter all have it). */
export interface EncodedMessage {
  readonly body: Buffer;
  readonly contentType?: string;
  readonly contentEncoding?: string;
  /** Read for the library's old compression mark (`x-messaging-compression`). */
  readonly headers: Readonly<Record<string, unknown>>;
}

const JSON_TYPE = 'application/json';
const TEXT_TYPE = 'text/plain; charset=utf-8';
const OCTET_TYPE = 'application/octet-stream';
const GZIP = 'gzip';

/**
 * How an incoming body's `contentEncoding` is undone. The codec writes only `gzip`; `deflate` and
 * `br` (HTTP's other two) are read from foreign producers. Some clients put the body's charset in
 * AMQP's `content_encoding` (Celery sends `utf-8`): a charset, `identity` or a transfer encoding
 * says the bytes are as they are. Any other value is refused: the message is dead-lettered with it.
 *
 * | contentEncoding (any case)                          | the body is             |
 * | --------------------------------------------------- | ----------------------- |
 * | absent, ``, `identity`, `utf-8`, `utf8`, `us-ascii`, `ascii`, `iso-8859-1`, `latin1`, `binary`, `7bit`, `8bit` | as it is |
 * | `gzip`, `x-gzip` (or the old `x-messaging-compression: gzip` header) | gunzipped   |
 * | `deflate`                                           | inflated (zlib)         |
 * | `br`                                                | brotli-decompressed     |
 * | anything else (`zstd`, `compress`, ...)             | refused: malformed      |
 */
type Inflate = (body: Buffer, options: { maxOutputLength: number }) => Buffer;
const INFLATE: ReadonlyMap<string, Inflate | null> = new Map([
  ...[
    '',
    'identity',
    'utf-8',
    'utf8',
    'us-ascii',
    'ascii',
    'iso-8859-1',
    'latin1',
    'binary',
    '7bit',
    '8bit',
  ].map((name) => [name, null] as const),
  [GZIP, gunzipSync],
  ['x-gzip', gunzipSync],
  ['deflate', inflateSync],
  ['br', brotliDecompressSync],
]);

/**
 * JSON by default; a `string` payload travels as plain text and a `Buffer` as bytes, unquoted, so
 * consumers in other languages read them as they were written. Decoding never throws anything but
 * `MalformedMessageError`, never returns an object with a polluted prototype, and hands plain text
 * and binary bodies from foreign producers to handlers as a string or a `Buffer`.
 */
export class MessageCodec {
  constructor(private readonly settings: CodecSettings) {}

  /**
   * Encodes a payload; throws `PayloadTooLargeError` before anything is sent. `envelope` wraps the
   * serialized payload first (a structured CloudEvent); the size limit and compression apply to
   * what is sent.
   */
  encode(payload: unknown, envelope?: BodyEnvelope): EncodedBody {
    const serialized = serialize(payload);
    const { body, contentType } = envelope
      ? envelope(serialized.body, serialized.contentType)
      : serialized;
    // The limit is the body a handler gets, as consumers check it after decompressing: a body over
    // it is refused here even when it would compress below it, or every consumer would refuse it.
    this.assertSize(body.length, 'message body');
    const { compressAboveBytes } = this.settings;
    if (compressAboveBytes !== false && body.length >= compressAboveBytes) {
      return { body: gzipSync(body), contentType, contentEncoding: GZIP };
    }
    return envelope ? { body, contentType } : serialized;
  }

  /** Decodes a message's body for its handler; throws `MalformedMessageError` with the reason. */
  decode(message: EncodedMessage): unknown {
    const body = this.inflate(message);
    // What this codec sends itself, without parsing the content type.
    if (message.contentType === JSON_TYPE) return this.parseJson(body);
    const type = message.contentType?.split(';')[0].trim().toLowerCase();
    if (type === JSON_TYPE || type?.endsWith('+json')) return this.parseJson(body);
    if (type?.startsWith('text/')) return body.toString('utf8');
    if (type) return body;
    // No content type (a plain producer): JSON if it is JSON, text if it is UTF-8, bytes otherwise.
    if (looksLikeJson(body)) {
      const text = body.toString('utf8');
      const value = tryParseJson(text);
      if (value !== NOT_JSON) {
        assertSafeJson(text, value, this.settings.maxJsonDepth);
        return value;
      }
    }
    const text = body.toString('utf8');
    return Buffer.byteLength(text, 'utf8') === body.length && !text.includes('\uFFFD')
      ? text
      : body;
  }

  /**
   * The body as its producer wrote it: decompressed by its `contentEncoding` (see {@link INFLATE})
   * within `maxBodyBytes`; throws `MalformedMessageError` for an encoding it cannot undo.
   */
  inflate(message: EncodedMessage): Buffer {
    const { body } = message;
    this.assertSize(body.length, 'body', true);
    const encoding =
      message.contentEncoding === undefined
        ? message.headers[MessagingHeaders.COMPRESSION] === GZIP
          ? GZIP
          : undefined
        : message.contentEncoding.trim().toLowerCase();
    if (encoding === undefined) return body;
    const inflate = INFLATE.get(encoding);
    if (inflate === null) return body;
    if (inflate === undefined) {
      throw new MalformedMessageError(
        `The body's content encoding ${JSON.stringify(message.contentEncoding)} is not one this library can decode (gzip, deflate or br): send it uncompressed or gzip-compressed`,
      );
    }
    try {
      return inflate(body, { maxOutputLength: this.settings.maxBodyBytes });
    } catch (error) {
      throw new MalformedMessageError(
        `The body is marked ${encoding} but cannot be decompressed within maxBodyBytes (${this.settings.maxBodyBytes}): ${(error as Error).message}`,
      );
    }
  }

  /**
   * Parses a JSON body, refusing `__proto__` tricks and nesting deeper than `maxJsonDepth` (plus
   * `envelopeLevels`: a structured CloudEvent wraps its data in one more) (`MalformedMessageError`).
   */
  parseJson(body: Buffer, envelopeLevels = 0): unknown {
    const text = body.toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new MalformedMessageError(`The body is not valid JSON: ${(error as Error).message}`);
    }
    assertSafeJson(text, value, this.settings.maxJsonDepth + envelopeLevels);
    return value;
  }

  private assertSize(length: number, what: string, incoming = false): void {
    if (length <= this.settings.maxBodyBytes) return;
    const message = `The ${what} is ${length} bytes, over maxBodyBytes (${this.settings.maxBodyBytes})`;
    throw incoming
      ? new MalformedMessageError(message)
      : new PayloadTooLargeError(
          `${message}. Send a reference to the data instead, or raise codec.maxBodyBytes.`,
        );
  }
}

/** A payload as bytes: text for a `string`, as it is for a `Buffer`, JSON for anything else. */
function serialize(payload: unknown): SerializedBody {
  if (typeof payload === 'string') {
    return { body: Buffer.from(payload, 'utf8'), contentType: TEXT_TYPE };
  }
  if (Buffer.isBuffer(payload)) return { body: payload, contentType: OCTET_TYPE };
  const text = payload === undefined ? 'null' : JSON.stringify(payload);
  return { body: Buffer.from(text, 'utf8'), contentType: JSON_TYPE };
}

const NOT_JSON = Symbol('not JSON');

function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return NOT_JSON;
  }
}

function looksLikeJson(body: Buffer): boolean {
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
    // { [ " - digit t f n
    return (
      c === 0x7b ||
      c === 0x5b ||
      c === 0x22 ||
      c === 0x2d ||
      (c >= 0x30 && c <= 0x39) ||
      c === 0x74 ||
      c === 0x66 ||
      c === 0x6e
    );
  }
  return false;
}
