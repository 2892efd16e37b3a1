import type { DeadLetter } from '../backend/broker-backend.interface';
import { waitFor } from '../testing/wait-for';
import {
  DashboardJobs,
  type DeadLetterSource,
  JOB_KEPT_MS,
  pickIds,
  purgePicked,
  REPLAY_CHUNK,
  replayPicked,
} from './dashboard-jobs';

/** A connection's dead letters in an array, with the calls made on them. */
function fakeSource(
  connection: string,
  count: number,
  error = 'boom',
): DeadLetterSource & {
  letters: DeadLetter[];
  calls: string[];
} {
  const letters = Array.from(
    { length: count },
    (_, i) => ({ id: `${connection}-${i}`, error }) as DeadLetter,
  );
  const calls: string[] = [];
  const take = (select: (letter: DeadLetter) => boolean): string[] => {
    const picked = letters.filter(select).map((l) => l.id);
    letters.splice(0, letters.length, ...letters.filter((l) => !picked.includes(l.id)));
    return picked;
  };
  return {
    connection,
    letters,
    calls,
    scan: async (visit) => {
      for (const letter of [...letters]) if (visit(letter) === false) return;
    },
    service: {
      replay: async () => false,
      replayWhere: async (select) => {
        calls.push('replayWhere');
        return { replayed: take(select), failed: [] };
      },
      purgeWhere: async (select) => {
        calls.push('purgeWhere');
        return { purged: take(select) };
      },
    },
  };
}

describe('group jobs', () => {
  it('replays the picked letters a chunk at a time, counting them, across connections', async () => {
    const a = fakeSource('a', REPLAY_CHUNK + 3);
    const b = fakeSource('b', 2, 'other');
    const picked = await pickIds([a, b], (letter) => letter.error === 'boom');
    const progress = { total: 0, done: 0, failed: [] };
    await replayPicked(picked, progress);
    expect(progress).toEqual({ total: REPLAY_CHUNK + 3, done: REPLAY_CHUNK + 3, failed: [] });
    expect(a.calls).toEqual(['replayWhere', 'replayWhere']);
    expect(b.calls).toEqual([]);
    expect(b.letters).toHaveLength(2);
  });

  it('reports a picked letter gone meanwhile as failed', async () => {
    const a = fakeSource('a', 3);
    const picked = await pickIds([a], () => true);
    a.letters.splice(0, 1);
    const progress = { total: 0, done: 0, failed: [] };
    await replayPicked(picked, progress);
    expect(progress).toEqual({
      total: 3,
      done: 2,
      failed: [{ id: 'a-0', error: 'not found (replayed or purged meanwhile)' }],
    });
  });

  it('purges only the letters picked (not one that came later), and reports a refusal', async () => {
    const a = fakeSource('a', 3);
    const b = fakeSource('b', 1);
    b.service.purgeWhere = () => Promise.reject(new Error('no purgeWhere here'));
    const picked = await pickIds([a, b], () => true);
    a.letters.push({ id: 'a-late', error: 'boom' } as DeadLetter);
    const progress = { total: 0, done: 0, failed: [] };
    await purgePicked(picked, progress);
    expect(progress).toEqual({
      total: 4,
      done: 3,
      failed: [{ id: 'connection b', error: 'no purgeWhere here' }],
    });
    expect(a.letters.map((l) => l.id)).toEqual(['a-late']);
  });

  it('keeps a job readable while it runs and for a while after it ends', async () => {
    let now = 0;
    const jobs = new DashboardJobs(() => now);
    let finish!: () => void;
    const job = jobs.start('replay', 'f00', async (progress) => {
      progress.total = 2;
      progress.done = 1;
      await new Promise<void>((resolve) => (finish = resolve));
      progress.done = 2;
    });
    expect(job).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{24}$/),
      kind: 'replay',
      fingerprint: 'f00',
      total: 2,
      done: 1,
      failed: [],
      finished: false,
    });
    finish();
    await waitFor(() => jobs.get(job.id)?.finished === true);
    expect(jobs.get(job.id)).toMatchObject({ done: 2, finished: true });
    now += JOB_KEPT_MS + 1;
    expect(jobs.get(job.id)).toBeUndefined();
  });

  it('ends a job that throws with the error among its failures', async () => {
    const jobs = new DashboardJobs();
    const job = jobs.start('purge', 'f00', () => Promise.reject(new Error('broker down')));
    await waitFor(() => jobs.get(job.id)?.finished === true);
    expect(jobs.get(job.id)?.failed).toEqual([{ id: '*', error: 'broker down' }]);
  });
});
