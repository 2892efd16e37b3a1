/**
 * The order of dead letters on RabbitMQ, without a broker: keys, the clock that stamps them, the
 * bounded selection of one pass, and paging and scanning over a queue that gives its messages back
 * in another order at every pass (as a quorum queue does).
 */
import type { DeadLetter } from '../../backend/broker-backend.interface';
import {
  compareKeys,
  DEAD_LETTER_ORDER_HEADER,
  DeadLetterClock,
  deadLetterKey,
  FirstByKey,
  pageByKey,
  scanByKey,
  type DeadLetterKey,
  type LetterPass,
} from './amqp-dead-letter-order';

const letter = (id: string, deadLetteredAt = new Date(0)): DeadLetter => ({
  id,
  messageId: id,
  topic: 't',
  queue: 'q',
  body: Buffer.from(id),
  headers: {},
  reason: 'max-attempts',
  error: 'x',
  errorClass: 'Error',
  attempts: 1,
  firstFailedAt: deadLetteredAt,
  lastFailedAt: deadLetteredAt,
  deadLetteredAt,
});

/**
 * A dead-letter queue whose every pass reads its letters in a new order (rotated and reversed, as a
 * quorum queue rotates or shuffles what is given back), with `between()` run after each pass (letters
 * arriving). `passes` counts the reads.
 */
function shufflingQueue(ids: string[], between: (ids: string[]) => void = () => undefined) {
  const state = { passes: 0 };
  const pass: LetterPass = async (visit) => {
    const n = state.passes++;
    const turned = [
      ...ids.slice((n * 17) % Math.max(ids.length, 1)),
      ...ids.slice(0, (n * 17) % Math.max(ids.length, 1)),
    ];
    const order = n % 2 === 1 ? turned.reverse() : turned;
    for (const [i, id] of order.entries()) {
      // The order stamp is the letter's index: what the settler's clock wrote.
      visit(letter(id), { order: ids.indexOf(id), id }, i % 3);
    }
    between(ids);
  };
  return { pass, state };
}

const idsOf = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `l${from + i}`);

describe('dead-letter keys', () => {
  const a = { order: 1, id: 'b' };
  it.each([
    [a, { order: 2, id: 'a' }, -1],
    [{ order: 2, id: 'a' }, a, 1],
    [a, { order: 1, id: 'c' }, -1],
    [a, { order: 1, id: 'a' }, 1],
    [a, { order: 1, id: 'b' }, 0],
  ])('compares %j with %j: %d', (x: DeadLetterKey, y: DeadLetterKey, sign: number) => {
    expect(Math.sign(compareKeys(x, y))).toBe(sign);
  });

  it('reads the order stamp, else the time it was dead-lettered in microseconds', () => {
    const at = new Date('2026-01-01T00:00:00.123Z');
    expect(deadLetterKey(letter('x', at), { [DEAD_LETTER_ORDER_HEADER]: 42 })).toEqual({
      order: 42,
      id: 'x',
    });
    expect(deadLetterKey(letter('x', at), {})).toEqual({ order: at.getTime() * 1000, id: 'x' });
    expect(deadLetterKey(letter('x', at), { [DEAD_LETTER_ORDER_HEADER]: 'soon' }).order).toBe(
      at.getTime() * 1000,
    );
  });

  it('stamps in microseconds, strictly increasing within a millisecond and when the clock goes back', () => {
    const clock = new DeadLetterClock();
    expect([1000, 1000, 1000, 1001, 999, 1002].map((ms) => clock.next(ms))).toEqual([
      1_000_000, 1_000_001, 1_000_002, 1_001_000, 1_001_001, 1_002_000,
    ]);
  });
});

describe('FirstByKey: what one pass keeps', () => {
  const offerAll = (first: FirstByKey<string>, orders: number[], bytes = 0) => {
    for (const order of orders) first.offer({ order, id: `k${order}` }, `v${order}`, bytes);
    return first.result();
  };

  it.each([
    [
      'the first 3 of 10, in order',
      undefined,
      3,
      Infinity,
      [3, 1, 4, 10, 5, 9, 2, 6, 8, 7],
      ['v1', 'v2', 'v3'],
      true,
    ],
    ['everything when it fits', undefined, 20, Infinity, [3, 1, 2], ['v1', 'v2', 'v3'], false],
    ['only what sorts after `after`', 5, 2, Infinity, [3, 9, 1, 6, 5, 8], ['v6', 'v8'], true],
    ['nothing after the last', 9, 2, Infinity, [3, 9, 1], [], false],
    ['no more than the bytes allow', undefined, 10, 25, [4, 2, 3, 1], ['v1', 'v2'], true],
    ['at least one, however large', undefined, 10, 5, [2, 1], ['v1'], true],
    ['none for a limit of 0', undefined, 0, Infinity, [2, 1], [], true],
  ])('keeps %s', (_what, after, count, bytes, orders, kept, more) => {
    const first = new FirstByKey<string>(
      after === undefined ? undefined : { order: after, id: `k${after}` },
      count,
      bytes,
    );
    const result = offerAll(first, orders, 10);
    expect(result.entries.map((e) => e.value)).toEqual(kept);
    expect(result.more).toBe(more);
  });

  it('keeps the first ones of many offered last to first', () => {
    const first = new FirstByKey<string>(undefined, 5);
    for (let order = 1000; order > 0; order--) first.offer({ order, id: '' }, '');
    expect(first.result().entries.map((e) => e.key.order)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('paging and scanning a queue that reorders at every pass', () => {
  it.each([10, 7, 1, 60, 100])('pages 60 letters by %d: each once, in order', async (size) => {
    const ids = idsOf(60);
    const { pass } = shufflingQueue(ids);
    const seen: string[] = [];
    for (let offset = 0; ; offset += size) {
      const page = await pageByKey(pass, offset, size);
      seen.push(...page.map((l) => l.id));
      if (page.length < size) break;
    }
    expect(seen).toEqual(ids);
  });

  it('shows letters that arrive while paging on later pages, each once', async () => {
    const ids = idsOf(60);
    let next = 60;
    // Two new letters after every pass, newer than all the others.
    const { pass } = shufflingQueue(ids, (all) => all.push(`l${next++}`, `l${next++}`));
    const seen: string[] = [];
    for (let offset = 0; offset < 200; offset += 7) {
      const page = await pageByKey(pass, offset, 7);
      seen.push(...page.map((l) => l.id));
      if (page.length < 7) break;
    }
    expect(seen.length).toBeGreaterThan(60);
    expect(seen).toEqual(ids.slice(0, seen.length));
  });

  it('lists everything in one pass, and an offset past the end as nothing', async () => {
    const { pass, state } = shufflingQueue(idsOf(30));
    expect((await pageByKey(pass, 0, Infinity)).map((l) => l.id)).toEqual(idsOf(30));
    expect(state.passes).toBe(1);
    expect(await pageByKey(pass, 30, 5)).toEqual([]);
    expect(await pageByKey(pass, 31, 5)).toEqual([]);
  });

  it('scans in order a batch per pass, and stops when asked', async () => {
    const { pass, state } = shufflingQueue(idsOf(50));
    const seen: string[] = [];
    await scanByKey(pass, (l) => void seen.push(l.id), { letters: 8, bytes: Infinity });
    expect(seen).toEqual(idsOf(50));
    expect(state.passes).toBe(7);

    const first: string[] = [];
    await scanByKey(pass, (l) => first.push(l.id) < 10, { letters: 8, bytes: Infinity });
    expect(first).toEqual(idsOf(10));
  });
});
