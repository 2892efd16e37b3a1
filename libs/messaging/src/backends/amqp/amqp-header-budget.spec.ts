/** The size of a message's headers as amqplib encodes them, and how a copy is cut down to fit. */
import { dirname, join } from 'node:path';
import { MessagingHeaders as H } from '../../backend/message-headers';
import {
  DROPPED_HEADERS,
  fieldTableBytes,
  fitHeaders,
  listDropped,
  MAX_HEADER_TABLE_BYTES,
} from './amqp-header-budget';

/** amqplib's own field-table encoder (not exported by the package: loaded by path, for this check). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const codec = require(join(dirname(require.resolve('amqplib')), 'lib', 'codec.js')) as {
  encodeTable(buffer: Buffer, table: unknown, offset: number): number;
};

describe('fieldTableBytes', () => {
  it.each<[string, Record<string, unknown>]>([
    ['nothing', {}],
    ['strings, UTF-8 included', { a: 'x', 'clé-é': 'déjà vu ✓', empty: '' }],
    [
      'integers of every width',
      {
        b: 1,
        nb: -128,
        s: 200,
        ns: -32_768,
        i: 70_000,
        ni: -(2 ** 31),
        l: 2 ** 40,
        nl: -(2 ** 33),
      },
    ],
    ['doubles', { d: 1.5, n: -0.25, big: 2 ** 64 }],
    ['booleans, null and a skipped undefined', { t: true, f: false, z: null, u: undefined }],
    ['bytes', { buf: Buffer.alloc(300, 1) }],
    [
      'arrays and tables',
      { arr: [1, 'two', [true], { k: 'v' }], table: { nested: { deeper: 7 } } },
    ],
    [
      'typed values and a decoded x-death record',
      {
        ts: { '!': 'timestamp', value: 1_767_225_600 },
        f: { '!': 'float', value: 1.5 },
        dec: { '!': 'decimal', value: { places: 2, digits: 1234 } },
        u8: { '!': 'uint8', value: 200 },
        i16: { '!': 'int16', value: 5 },
        u32: { '!': 'uint32', value: 5 },
        i64: { '!': 'int64', value: 5 },
        'x-death': [
          {
            count: 1,
            reason: 'expired',
            queue: 'messaging.retry.500',
            time: { '!': 'timestamp', value: 1_767_225_600 },
            exchange: 'messaging.retry.500',
            'routing-keys': ['payments.order-created'],
          },
        ],
      },
    ],
  ])('counts %s as amqplib writes them', (_what, table) => {
    expect(fieldTableBytes(table)).toBe(codec.encodeTable(Buffer.alloc(100_000), table, 0));
  });
});

describe('fitHeaders', () => {
  const describeDropped = (dropped: Parameters<typeof listDropped>[0]) =>
    `dropped: ${listDropped(dropped)}`;
  const library = {
    [H.ATTEMPT]: 3,
    [H.LAST_ERROR]: 'e'.repeat(1_000),
    [H.COMPRESSION]: 'gzip',
    [H.DEAD_LETTER_ID]: 'id-1',
  };

  it('leaves headers that fit as they are', () => {
    const headers = { ...library, trace: 't'.repeat(100) };
    expect(fitHeaders(headers, describeDropped)).toEqual({ headers, dropped: [] });
  });

  it("drops the largest headers that are not the library's, only as many as needed, and says which", () => {
    const headers = {
      ...library,
      big: 'b'.repeat(61_000),
      medium: 'm'.repeat(4_000),
      small: 'keep me',
    };
    expect(fieldTableBytes(headers)).toBeGreaterThan(MAX_HEADER_TABLE_BYTES);
    const { headers: fitted, dropped } = fitHeaders(headers, describeDropped);
    expect(dropped).toEqual([{ name: 'big', bytes: 61_009 }]);
    expect(fitted).toEqual({
      ...library,
      medium: headers.medium,
      small: 'keep me',
      [DROPPED_HEADERS]: 'dropped: big (61009 bytes)',
    });
    expect(fieldTableBytes(fitted)).toBeLessThanOrEqual(MAX_HEADER_TABLE_BYTES);
  });

  it('counts the record it adds, and drops the next largest when the record tips it over', () => {
    const headers = { a: 'a'.repeat(40), b: 'b'.repeat(30), c: 'c'.repeat(10) };
    const expected = { c: headers.c, [DROPPED_HEADERS]: 'dropped: a (47 bytes), b (37 bytes)' };
    // Without `a` alone the headers would fit, but not with the record of it.
    const limit = fieldTableBytes(expected);
    expect(fieldTableBytes(headers) - 47).toBeLessThan(limit);
    const { headers: fitted, dropped } = fitHeaders(headers, describeDropped, limit);
    expect(dropped.map((d) => d.name)).toEqual(['a', 'b']);
    expect(fitted).toEqual(expected);
  });

  it("drops every other header, never the library's, when even that is not enough", () => {
    const { headers: fitted, dropped } = fitHeaders({ ...library, x: 'x' }, describeDropped, 100);
    expect(dropped.map((d) => d.name)).toEqual(['x']);
    expect(fitted).toEqual({ ...library, [DROPPED_HEADERS]: 'dropped: x (8 bytes)' });
  });

  it('keeps the record to 1 KiB however many headers go', () => {
    const many = Object.fromEntries(
      Array.from({ length: 500 }, (_, i) => [`header-${i}`, 'v'.repeat(100)]),
    );
    const { headers: fitted, dropped } = fitHeaders(many, describeDropped, 2_000);
    expect(dropped.length).toBeGreaterThan(400);
    expect(Buffer.byteLength(fitted[DROPPED_HEADERS] as string)).toBeLessThanOrEqual(1024);
    expect(fieldTableBytes(fitted)).toBeLessThanOrEqual(2_000);
  });
});
