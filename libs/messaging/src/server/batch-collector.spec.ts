import { BatchFailure } from '../errors/messaging.errors';
import { BatchCollector, type BatchTimers, itemFailures } from './batch-collector';

/** Timers moved by hand: `fire()` runs the one pending callback. */
class HandTimers implements BatchTimers {
  pending?: { callback: () => void; ms: number };
  set(callback: () => void, ms: number): unknown {
    this.pending = { callback, ms };
    return this.pending;
  }
  clear(handle: unknown): void {
    if (this.pending === handle) this.pending = undefined;
  }
  fire(): void {
    const pending = this.pending;
    this.pending = undefined;
    pending?.callback();
  }
}

/** A collector of strings whose batches are recorded; each item's result is `<item>@<batch number>`. */
function collector(size: number, maxWaitMs = 50) {
  const timers = new HandTimers();
  const batches: string[][] = [];
  const c = new BatchCollector<string, string>({
    size,
    maxWaitMs,
    timers,
    unhandled: 'requeue',
    run: (items) => {
      batches.push(items);
      return Promise.resolve(items.map((item) => `${item}@${batches.length}`));
    },
  });
  return { c, timers, batches };
}

describe('BatchCollector', () => {
  it('hands a batch over as soon as it holds size items, in arrival order', async () => {
    const { c, timers, batches } = collector(3);
    const results = ['a', 'b', 'c', 'd'].map((item) => c.add(item));
    expect(batches).toEqual([['a', 'b', 'c']]);
    expect(await Promise.all(results.slice(0, 3))).toEqual(['a@1', 'b@1', 'c@1']);
    // 'd' started the next batch, and its timer.
    expect(c.waiting).toBe(1);
    expect(timers.pending?.ms).toBe(50);
  });

  it('hands a partial batch over maxWaitMs after its first item arrived', async () => {
    const { c, timers, batches } = collector(10, 25);
    const first = c.add('a');
    expect(timers.pending?.ms).toBe(25);
    const timer = timers.pending;
    const second = c.add('b');
    // The second item does not restart the wait: the first one's timer stands.
    expect(timers.pending).toBe(timer);
    expect(batches).toEqual([]);
    timers.fire();
    expect(batches).toEqual([['a', 'b']]);
    expect(await Promise.all([first, second])).toEqual(['a@1', 'b@1']);
    expect(c.waiting).toBe(0);
  });

  it('stops the timer of a batch that filled before it fired', () => {
    const { c, timers } = collector(2);
    void c.add('a');
    void c.add('b');
    expect(timers.pending).toBeUndefined();
  });

  it('with size 1, hands every item over alone and at once', () => {
    const { c, timers, batches } = collector(1);
    void c.add('a');
    void c.add('b');
    expect(batches).toEqual([['a'], ['b']]);
    expect(timers.pending).toBeUndefined();
  });

  it('on close, gives waiting items (and later ones) back unhandled, never to run', async () => {
    const { c, timers, batches } = collector(10);
    const waiting = [c.add('a'), c.add('b')];
    c.close();
    expect(await Promise.all(waiting)).toEqual(['requeue', 'requeue']);
    expect(timers.pending).toBeUndefined();
    expect(await c.add('c')).toBe('requeue');
    expect(batches).toEqual([]);
  });

  it('gives every item of a batch back unhandled when run rejects or answers short', async () => {
    const timers = new HandTimers();
    let call = 0;
    const c = new BatchCollector<string, string>({
      size: 2,
      maxWaitMs: 10,
      timers,
      unhandled: 'requeue',
      run: () => (++call === 1 ? Promise.reject(new Error('bug')) : Promise.resolve(['only'])),
    });
    expect(await Promise.all([c.add('a'), c.add('b')])).toEqual(['requeue', 'requeue']);
    expect(await Promise.all([c.add('c'), c.add('d')])).toEqual(['only', 'requeue']);
  });
});

describe('itemFailures', () => {
  const boom = new Error('boom');
  const bad = new Error('bad');
  const CASES: Array<[string, unknown, number, Array<[number, unknown]>, boolean]> = [
    [
      'any other throw fails every item',
      boom,
      3,
      [
        [0, boom],
        [1, boom],
        [2, boom],
      ],
      false,
    ],
    [
      'BatchFailure fails only the listed items',
      new BatchFailure([{ index: 1, error: bad }]),
      3,
      [[1, bad]],
      false,
    ],
    ['an empty BatchFailure fails none', new BatchFailure([]), 2, [], false],
    [
      'an index listed twice keeps its first error',
      new BatchFailure([
        { index: 0, error: bad },
        { index: 0, error: boom },
      ]),
      2,
      [[0, bad]],
      false,
    ],
    [
      'an error that is undefined still fails its item',
      new BatchFailure([{ index: 0, error: undefined }]),
      1,
      [[0, undefined]],
      false,
    ],
  ];

  it.each(CASES)('%s', (_case, thrown, count, failed, invalid) => {
    const result = itemFailures(thrown, count);
    expect([...result.failed]).toEqual(failed);
    expect(result.invalid !== undefined).toBe(invalid);
  });

  it.each([[3], [-1], [1.5], [Number.NaN]])(
    'a BatchFailure naming index %p of a batch of 3 fails every item, with a reason',
    (index) => {
      const thrown = new BatchFailure([
        { index: 0, error: bad },
        { index, error: bad },
      ]);
      const result = itemFailures(thrown, 3);
      expect([...result.failed]).toEqual([
        [0, thrown],
        [1, thrown],
        [2, thrown],
      ]);
      expect(result.invalid).toContain(`index ${index}`);
    },
  );
});
