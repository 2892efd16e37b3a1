import type { DeadLetter } from '../backend/broker-backend.interface';
import { DEFAULT_CODEC } from '../codec/codec-options';
import { MessageCodec } from '../codec/message-codec';
import { groupTable, letterDetails, letterTable, tableTime, toJson, toView } from './dlq-format';
import { cleanCell, renderFields, renderTable, truncate, type TableColumn } from './table';

describe('renderTable', () => {
  const columns: TableColumn[] = [
    { header: 'TOPIC' },
    { header: 'N', align: 'right' },
    { header: 'ERROR', maxWidth: 8 },
  ];

  it.each<[string, string[][], string[]]>([
    ['only the header without rows', [], ['TOPIC  N  ERROR']],
    [
      'columns as wide as their widest cell, numbers right-aligned, no trailing spaces',
      [
        ['order.created', '3', 'boom'],
        ['a', '120', ''],
      ],
      ['TOPIC            N  ERROR', 'order.created    3  boom', 'a              120'],
    ],
    [
      'long cells cut to maxWidth with an ellipsis',
      [['a', '1', 'a very long error']],
      ['TOPIC  N  ERROR', 'a      1  a very …'],
    ],
    [
      'control characters and line breaks as spaces (no terminal escapes)',
      [['x\u001b[31my', '1', 'a\nb\r\nc']],
      ['TOPIC    N  ERROR', 'x [31my  1  a b c'],
    ],
    ['missing cells as empty', [['a']], ['TOPIC  N  ERROR', 'a']],
    [
      'non-ASCII text by characters, not bytes',
      [['é€😀', '1', '']],
      ['TOPIC  N  ERROR', 'é€😀    1'],
    ],
  ])('renders %s', (_, rows, lines) => {
    expect(renderTable(columns, rows)).toEqual(lines);
  });
});

describe('cell helpers', () => {
  it.each([
    ['plain', 'plain'],
    ['tab\there', 'tab here'],
    ['csi\u009b2J', 'csi 2J'],
    ['del\u007f', 'del '],
  ])('cleanCell(%j) is %j', (text, clean) => {
    expect(cleanCell(text)).toBe(clean);
  });

  it.each([
    ['short', 10, 'short'],
    ['exactly10!', 10, 'exactly10!'],
    ['eleven char', 10, 'eleven ch…'],
    ['😀😀😀', 2, '😀…'],
  ])('truncate(%j, %d) is %j', (text, max, cut) => {
    expect(truncate(text, max)).toBe(cut);
  });

  it('aligns fields and indents the lines after the first of a value', () => {
    expect(
      renderFields([
        ['id', 'x'],
        ['message id', 'line 1\nline 2'],
      ]),
    ).toEqual(['id          x', 'message id  line 1', '            line 2']);
  });
});

describe('dead letters as text', () => {
  const at = new Date('2025-03-01T14:05:09.123Z');
  const letter: DeadLetter = {
    id: '3f2a9c1e-7b4d-4e1a-9c2b-5d6e7f8a9b0c',
    messageId: 'm-1',
    topic: 'order.created',
    queue: 'payments.order.created',
    body: Buffer.from('{"orderId":"o-1","amount":42}'),
    contentType: 'application/json',
    headers: { 'x-tenant': 'acme', 'x-n': 3 },
    reason: 'max-attempts',
    error: 'gateway timeout',
    errorClass: 'Error',
    attempts: 4,
    firstFailedAt: at,
    lastFailedAt: at,
    deadLetteredAt: at,
  };
  const codec = new MessageCodec(DEFAULT_CODEC);

  it('prints times to the second in UTC', () => {
    expect(tableTime(at)).toBe('2025-03-01 14:05:09Z');
    expect(tableTime(new Date(NaN))).toBe('invalid');
  });

  it('lists a letter on one line', () => {
    expect(letterTable([letter])).toEqual([
      'ID                                    DEAD-LETTERED         TOPIC          REASON        ATTEMPTS  ERROR',
      '3f2a9c1e-7b4d-4e1a-9c2b-5d6e7f8a9b0c  2025-03-01 14:05:09Z  order.created  max-attempts         4  Error: gateway timeout',
    ]);
  });

  it('groups on one line each, counting topics beyond three', () => {
    const lines = groupTable([
      {
        error: 'Error: gateway timeout',
        count: 12,
        topics: ['a', 'b', 'c', 'd', 'e'],
        reasons: ['max-attempts'],
        firstSeen: at,
        lastSeen: at,
        latestId: 'x',
      },
    ]);
    expect(lines).toEqual([
      'COUNT  FIRST SEEN            LAST SEEN             TOPICS           ERROR',
      '   12  2025-03-01 14:05:09Z  2025-03-01 14:05:09Z  a, b, c +2 more  Error: gateway timeout',
    ]);
  });

  it('decodes the payload as a handler would: JSON, text, bytes, or the text of a malformed body', () => {
    expect(toView(codec, letter).payload).toEqual({ orderId: 'o-1', amount: 42 });
    const text = { ...letter, body: Buffer.from('hi'), contentType: 'text/plain' };
    expect(toView(codec, text).payload).toBe('hi');
    const bytes = {
      ...letter,
      body: Buffer.from([0xff, 0x00]),
      contentType: 'application/octet-stream',
    };
    expect(toView(codec, bytes)).toMatchObject({ payload: '/wA=', payloadEncoding: 'base64' });
    const malformed = { ...letter, body: Buffer.from('{"no') };
    expect(toView(codec, malformed).payload).toBe('{"no');
  });

  it('shows one letter in full, its payload pretty-printed', () => {
    const lines = letterDetails(toView(codec, letter));
    expect(lines.slice(0, 3)).toEqual([
      'id             3f2a9c1e-7b4d-4e1a-9c2b-5d6e7f8a9b0c',
      'message id     m-1',
      'topic          order.created',
    ]);
    expect(lines).toContain('error          Error: gateway timeout');
    expect(lines.slice(-9)).toEqual([
      'Headers:',
      '  x-tenant  acme',
      '  x-n       3',
      '',
      'Payload:',
      '  {',
      '    "orderId": "o-1",',
      '    "amount": 42',
      '  }',
    ]);
  });

  it('writes JSON that escapes C1 control characters and parses back', () => {
    const json = toJson({ text: 'a\u009bb\u0007' });
    expect(json.includes('\u009b') || json.includes('\u0007')).toBe(false);
    expect(JSON.parse(json)).toEqual({ text: 'a\u009bb\u0007' });
  });
});
