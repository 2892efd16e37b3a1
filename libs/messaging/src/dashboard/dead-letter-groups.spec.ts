import { gunzipSync, gzipSync } from 'node:zlib';
import type { DeadLetter } from '../backend/broker-backend.interface';
import { DeadLetterGrouping, detailOf } from './dead-letter-groups';

function letter(id: string, body: Buffer, error = `order ${id} declined`, at = 1000): DeadLetter {
  return {
    id,
    messageId: `m-${id}`,
    topic: 'orders.placed',
    queue: 'svc.orders.placed',
    body,
    headers: { 'x-tenant': '<b>t</b>' },
    reason: 'max-attempts',
    error,
    errorClass: 'Error',
    attempts: 3,
    firstFailedAt: new Date(at - 500),
    lastFailedAt: new Date(at),
    deadLetteredAt: new Date(at),
  };
}

describe('detailOf', () => {
  it('shows a compressed body decompressed, and one it cannot undo as it is stored', () => {
    const compressed = {
      ...letter('1', gzipSync(Buffer.from('{"a":1}'))),
      contentEncoding: 'gzip',
    };
    expect(detailOf(compressed, 'default', 100, 0, (l) => gunzipSync(l.body)).body).toBe('{"a":1}');
    const broken = { ...letter('2', Buffer.from([1, 2, 3])), contentEncoding: 'gzip' };
    const shown = detailOf(broken, 'default', 100, 0, (l) => gunzipSync(l.body));
    expect(shown).toMatchObject({ body: Buffer.from([1, 2, 3]).toString('utf8'), bodyBytes: 3 });
  });

  it.each([
    ['UTF-8 text, whole', Buffer.from('{"a":"é"}'), 100, '{"a":"é"}', 'utf8', false],
    ['UTF-8 text, cut before a split character', Buffer.from('aé'), 2, 'a', 'utf8', true],
    ['bytes, as base64', Buffer.from([0xff, 0xfe, 0x00]), 100, '//4A', 'base64', false],
    ['bytes, cut', Buffer.from([0xff, 0xfe, 0x00]), 2, '//4=', 'base64', true],
  ])('%s', (_, body, max, shown, encoding, truncated) => {
    const detail = detailOf(letter('1', body), 'default', max, 2000);
    expect(detail).toMatchObject({
      body: shown,
      bodyEncoding: encoding,
      bodyTruncated: truncated,
      bodyBytes: body.length,
      headers: { 'x-tenant': '<b>t</b>' },
      ageMs: 1000,
    });
  });
});

describe('DeadLetterGrouping', () => {
  it('counts every letter in its group and lists the newest maxLetters', () => {
    const grouping = new DeadLetterGrouping(2, 10_000);
    for (let i = 1; i <= 5; i++)
      grouping.add(letter(`${i}`, Buffer.from('x'), `order ${i} declined`, i * 1000), 'default');
    grouping.add(letter('6', Buffer.from('x'), 'gateway down', 500), 'default');
    const result = grouping.result();
    expect(result.total).toBe(6);
    expect(result.truncated).toBe(true);
    expect(result.groups.map((g) => [g.errorShape, g.count, g.letters.map((l) => l.id)])).toEqual([
      ['order # declined', 5, ['5', '4']],
      ['gateway down', 1, []],
    ]);
    expect(result.groups[0].firstFailedAt).toBe(new Date(500).toISOString());
    expect(result.groups[0].lastFailedAt).toBe(new Date(5000).toISOString());
  });
});
