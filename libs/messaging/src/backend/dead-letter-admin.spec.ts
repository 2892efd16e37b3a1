import { BackendClosedError } from '../errors/messaging.errors';
import { BackendEventHub } from './backend-events';
import type { DeadLetter } from './broker-backend.interface';
import { guardDeadLetters, SCAN_PAGE_SIZE, type DeadLetterStore } from './dead-letter-admin';

/** The rules every backend's `deadLetters` gets from `guardDeadLetters`, on a store of plain ids. */
describe('guardDeadLetters', () => {
  const letter = (id: string, queue = 'svc.q') => ({ id, queue }) as DeadLetter;
  let hub: BackendEventHub;
  let open: boolean;
  let held: DeadLetter[];
  /** A store with `list`, `replay`, `purge` and `purgeWhere` only: the guard supplies the rest. */
  const store: DeadLetterStore = {
    list: async (_service, page = {}) => {
      const from = page.offset ?? 0;
      return held.slice(from, from + (page.limit ?? Infinity));
    },
    replay: async (_service, id) => {
      const at = held.findIndex((l) => l.id === id);
      if (at < 0) return false;
      if (held[at].queue === 'gone') throw new Error(`queue of ${id} is gone`);
      held.splice(at, 1);
      return true;
    },
    purge: async () => held.splice(0).length,
    purgeWhere: async (_service, select) => {
      const purged = held.filter(select).map((l) => l.id);
      held = held.filter((l) => !purged.includes(l.id));
      return { purged };
    },
  };
  const admin = () =>
    guardDeadLetters(store, {
      assertOpen: () => {
        if (!open) throw new BackendClosedError('closed');
      },
      hub,
    });

  beforeEach(() => {
    hub = new BackendEventHub();
    hub.setStatus('connected');
    open = true;
    held = ['a', 'b', 'c'].map((id) => letter(id));
  });

  it('rejects every operation once the backend is closed', async () => {
    open = false;
    const dl = admin();
    for (const call of [
      () => dl.list('svc'),
      () => dl.scan('svc', () => undefined),
      () => dl.replay('svc', 'a'),
      () => dl.replayAll('svc'),
      () => dl.replayWhere('svc', () => true),
      () => dl.purge('svc'),
      () => dl.purgeWhere('svc', () => true),
    ])
      await expect(call()).rejects.toBeInstanceOf(BackendClosedError);
    expect(held).toHaveLength(3);
  });

  it('scans by pages of list, oldest first, until visit says no more', async () => {
    held = Array.from({ length: SCAN_PAGE_SIZE + 5 }, (_, i) => letter(`l${i}`));
    const seen: string[] = [];
    await admin().scan('svc', (l) => void seen.push(l.id));
    expect(seen).toEqual(held.map((l) => l.id));
    seen.length = 0;
    await admin().scan('svc', (l) => seen.push(l.id) < 2);
    expect(seen).toEqual(['l0', 'l1']);
  });

  it('replays a selection one by one, saying why a picked letter stays', async () => {
    held = [letter('a'), letter('b', 'gone'), letter('c')];
    const outcome = await admin().replayWhere('svc', (l) => l.id !== 'c');
    expect(outcome).toEqual({
      replayed: ['a'],
      failed: [{ id: 'b', error: 'queue of b is gone' }],
    });
    expect(held.map((l) => l.id)).toEqual(['b', 'c']);
  });

  it('stops replaying after a failure while the backend is not connected', async () => {
    held = [letter('a', 'gone'), letter('b'), letter('c')];
    hub.setStatus('reconnecting');
    const outcome = await admin().replayWhere('svc', () => true);
    expect(outcome.replayed).toEqual([]);
    expect(outcome.failed.map((f) => f.error)).toEqual([
      'queue of a is gone',
      'not attempted: no connection',
      'not attempted: no connection',
    ]);
  });

  it('replays all, counting those replayed and reporting those that stay as errors', async () => {
    held = [letter('a'), letter('b', 'gone'), letter('c')];
    const errors: string[] = [];
    hub.on('error', (error) => errors.push(error.message));
    expect(await admin().replayAll('svc')).toBe(2);
    expect(errors).toEqual([
      "Dead letter b of 'svc' was not replayed and stays: queue of b is gone",
    ]);
  });

  it("uses the store's own one-pass scan and replayWhere when it has them", async () => {
    const scan = jest.fn(async () => undefined);
    const replayWhere = jest.fn(async () => ({ replayed: ['x'], failed: [] }));
    const dl = guardDeadLetters({ ...store, scan, replayWhere }, { assertOpen: () => {}, hub });
    await dl.scan('svc', () => undefined);
    expect(await dl.replayAll('svc')).toBe(1);
    expect(scan).toHaveBeenCalledTimes(1);
    expect(replayWhere).toHaveBeenCalledTimes(1);
    expect(held).toHaveLength(3);
  });
});
