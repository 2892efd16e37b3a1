/**
 * `ReplicaWait` without Redis: the publishes whose writes came back in one turn of the event loop
 * share ONE `WAIT`; enough replicas resolve them all, fewer or a failed `WAIT` reject them all with
 * `PublishTimeoutError`; a publish whose write failed rejects with its own error and waits for
 * nothing. (With a real replica: test/cluster/, RC0 and RC1.)
 */
import type { Redis } from 'ioredis';
import { PublishTimeoutError } from '../../errors/messaging.errors';
import { ReplicaWait } from './redis-replicas';

/** A connection whose `WAIT` answers `answer` (a count, or an error), counting the calls. */
function fakeRedis(answer: number | Error): { redis: Redis; waits: unknown[][] } {
  const waits: unknown[][] = [];
  const redis = {
    isCluster: false,
    call: (...args: unknown[]) => {
      waits.push(args);
      return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
    },
  } as unknown as Redis;
  return { redis, waits };
}

describe('ReplicaWait', () => {
  it('sends one WAIT for the publishes written in one turn, and resolves them all', async () => {
    const { redis, waits } = fakeRedis(1);
    const wait = new ReplicaWait({ replicas: 1, timeoutMs: 500 }, 0);
    await Promise.all(Array.from({ length: 100 }, () => wait.after(redis, Promise.resolve())));
    expect(waits).toEqual([['WAIT', 1, 500]]);
    // A later turn: a WAIT of its own.
    await wait.after(redis, Promise.resolve());
    expect(waits).toHaveLength(2);
  });

  it('rejects the whole batch with PublishTimeoutError when fewer replicas acknowledged', async () => {
    const { redis } = fakeRedis(1);
    const wait = new ReplicaWait({ replicas: 2, timeoutMs: 300 }, 0);
    const results = await Promise.allSettled([
      wait.after(redis, Promise.resolve()),
      wait.after(redis, Promise.resolve()),
    ]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const error = (r as PromiseRejectedResult).reason as Error;
      expect(error).toBeInstanceOf(PublishTimeoutError);
      expect(error.message).toMatch(/only 1 of the 2 replicas .* within 300 ms.*may or may not/);
    }
  });

  it('rejects with PublishTimeoutError when the WAIT itself fails', async () => {
    const { redis } = fakeRedis(new Error('Connection is closed.'));
    const wait = new ReplicaWait({ replicas: 1, timeoutMs: 300 }, 0);
    await expect(wait.after(redis, Promise.resolve())).rejects.toThrow(
      /waiting for its replicas \(WAIT, waitForReplicas\) failed: Connection is closed\. It may or may not/,
    );
  });

  it('lets a failed write reject with its own error, without a WAIT', async () => {
    const { redis, waits } = fakeRedis(1);
    const wait = new ReplicaWait({ replicas: 1, timeoutMs: 300 }, 0);
    const refused = new Error('refused');
    await expect(wait.after(redis, Promise.reject(refused))).rejects.toBe(refused);
    expect(waits).toHaveLength(0);
  });
});
