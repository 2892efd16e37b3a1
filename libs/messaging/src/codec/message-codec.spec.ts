import { brotliCompressSync, deflateSync, gunzipSync, gzipSync } from 'node:zlib';
import { MessagingHeaders } from '../backend/message-headers';
import { MalformedMessageError, PayloadTooLargeError } from '../errors/messaging.errors';
import { type EncodedMessage, MessageCodec } from './message-codec';

const codec = new MessageCodec({ maxBodyBytes: 1024, compressAboveBytes: 256, maxJsonDepth: 8 });
const delivery = (
  body: Buffer | string,
  contentType?: string,
  headers: Record<string, unknown> = {},
): EncodedMessage => ({
  body: Buffer.isBuffer(body) ? body : Buffer.from(body),
  contentType,
  headers,
});

describe('MessageCodec', () => {
  it('round-trips JSON payloads', () => {
    const encoded = codec.encode({ a: 1, b: ['x'] });
    expect(encoded.contentType).toBe('application/json');
    expect(codec.decode(delivery(encoded.body, encoded.contentType))).toEqual({ a: 1, b: ['x'] });
  });

  it('sends strings as plain text, unquoted, and reads them back as strings', () => {
    const encoded = codec.encode('hello "world"');
    expect(encoded.contentType).toBe('text/plain; charset=utf-8');
    expect(encoded.body.toString('utf8')).toBe('hello "world"');
    expect(codec.decode(delivery(encoded.body, encoded.contentType))).toBe('hello "world"');
    expect(codec.decode(delivery('{"a":1}', encoded.contentType))).toBe('{"a":1}');
  });

  it('passes Buffers through as binary', () => {
    const encoded = codec.encode(Buffer.from([0xff, 0xfe]));
    expect(encoded.contentType).toBe('application/octet-stream');
    expect(codec.decode(delivery(encoded.body, encoded.contentType))).toEqual(
      Buffer.from([0xff, 0xfe]),
    );
  });

  it('compresses large bodies, marked by contentEncoding, and decompresses them transparently', () => {
    const payload = { text: 'a'.repeat(600) };
    const encoded = codec.encode(payload);
    expect(encoded.contentEncoding).toBe('gzip');
    expect(encoded.contentType).toBe('application/json');
    expect(encoded.body.length).toBeLessThan(100);
    expect(gunzipSync(encoded.body).toString()).toBe(JSON.stringify(payload));
    expect(
      codec.decode({ ...delivery(encoded.body, encoded.contentType), contentEncoding: 'gzip' }),
    ).toEqual(payload);
    expect(codec.encode({ text: 'short' }).contentEncoding).toBeUndefined();
  });

  it('still reads the old compression header of earlier releases', () => {
    const body = gzipSync(Buffer.from('{"old":true}'));
    expect(
      codec.decode(delivery(body, 'application/json', { [MessagingHeaders.COMPRESSION]: 'gzip' })),
    ).toEqual({ old: true });
  });

  const text = Buffer.from('{"a":1}');
  it.each([
    ['gzip', gzipSync(text)],
    ['GZIP', gzipSync(text)],
    ['x-gzip', gzipSync(text)],
    ['deflate', deflateSync(text)],
    ['br', brotliCompressSync(text)],
    ['identity', text],
    ['utf-8', text],
    ['UTF-8', text],
    ['', text],
  ])('reads a body with content encoding %j', (encoding, body) => {
    expect(
      codec.decode({ ...delivery(body, 'application/json'), contentEncoding: encoding }),
    ).toEqual({
      a: 1,
    });
  });

  it.each(['zstd', 'compress', 'gzip, br'])(
    'refuses a body with content encoding %j as malformed, naming it',
    (encoding) => {
      const message = { ...delivery(text, 'application/json'), contentEncoding: encoding };
      expect(() => codec.decode(message)).toThrow(MalformedMessageError);
      expect(() => codec.decode(message)).toThrow(
        `content encoding ${JSON.stringify(encoding)} is not one this library can decode`,
      );
    },
  );

  it('refuses a body marked gzip that is not', () => {
    const message = { ...delivery(text, 'application/json'), contentEncoding: 'gzip' };
    expect(() => codec.decode(message)).toThrow(/marked gzip but cannot be decompressed/);
  });

  it('wraps the serialized payload in an envelope before the size limit and compression', () => {
    const encoded = codec.encode('hi', (body, contentType) => ({
      body: Buffer.from(`[${JSON.stringify(contentType)},"${body.toString()}"]`),
      contentType: 'application/x-test',
    }));
    expect(encoded).toEqual({
      body: Buffer.from('["text/plain; charset=utf-8","hi"]'),
      contentType: 'application/x-test',
    });
  });

  it('refuses to publish a body over maxBodyBytes', () => {
    const small = new MessageCodec({
      maxBodyBytes: 10,
      compressAboveBytes: false,
      maxJsonDepth: 8,
    });
    expect(() => small.encode({ text: 'too long for ten bytes' })).toThrow(PayloadTooLargeError);
  });

  it('counts the limit before compression, as consumers do after decompressing', () => {
    // 2,000 bytes that gzip to a few dozen: consumers would refuse them, so publishing does.
    expect(() => codec.encode({ text: 'a'.repeat(2_000) })).toThrow(
      /message body is 2011 bytes, over maxBodyBytes \(1024\)/,
    );
  });

  it('decodes foreign bodies by content type, and sniffs when there is none', () => {
    expect(codec.decode(delivery('hello', 'text/plain'))).toBe('hello');
    expect(codec.decode(delivery('{"a":1}'))).toEqual({ a: 1 });
    expect(codec.decode(delivery('hello world'))).toBe('hello world');
    expect(codec.decode(delivery('42 apples'))).toBe('42 apples');
    expect(codec.decode(delivery(Buffer.from([0xff, 0xfe, 0x00])))).toEqual(
      Buffer.from([0xff, 0xfe, 0x00]),
    );
    expect(codec.decode(delivery(Buffer.from([1, 2]), 'application/octet-stream'))).toEqual(
      Buffer.from([1, 2]),
    );
  });

  it.each([
    ['malformed JSON', '{"a": ', 'application/json', /not valid JSON/],
    ['__proto__ keys', '{"a": {"__proto__": {"polluted": 1}}}', 'application/json', /__proto__/],
    ['escaped __proto__ keys', '{"\\u005f_proto__": {"polluted": 1}}', undefined, /__proto__/],
    [
      'constructor.prototype',
      '{"constructor": {"prototype": {"polluted": 1}}}',
      'application/json',
      /constructor\.prototype/,
    ],
    [
      'deep nesting',
      `${'['.repeat(20)}${']'.repeat(20)}`,
      'application/json',
      /nests deeper than 8/,
    ],
    ['over-size bodies', 'x'.repeat(2000), 'text/plain', /over maxBodyBytes/],
  ])('rejects %s with MalformedMessageError', (_name, body, contentType, reason) => {
    expect(() => codec.decode(delivery(body, contentType))).toThrow(MalformedMessageError);
    expect(() => codec.decode(delivery(body, contentType))).toThrow(reason);
    expect(({} as { polluted?: number }).polluted).toBeUndefined();
  });

  it('accepts a "constructor" key that is plain data', () => {
    expect(codec.decode(delivery('{"constructor": "Acme Ltd"}', 'application/json'))).toEqual({
      constructor: 'Acme Ltd',
    });
  });

  it('rejects a gzip bomb that inflates past maxBodyBytes', () => {
    const bomb = gzipSync(Buffer.alloc(100_000));
    expect(() =>
      codec.decode(delivery(bomb, 'application/json', { [MessagingHeaders.COMPRESSION]: 'gzip' })),
    ).toThrow(/cannot be decompressed/);
  });
});
