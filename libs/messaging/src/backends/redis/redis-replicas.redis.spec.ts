/**
 * `waitForReplicas` on the shared Redis, which has no replica: every publish of a batch rejects with
 * `PublishTimeoutError` once its `WAIT` answers 0, saying that the message may or may not be kept,
 * and the messages are in the stream all the same (the master has them). With replicas, and the
 * count of `WAIT`s per batch: test/cluster/ (`npm run test:cluster`, RC0 and RC1).
 */
import { PublishTimeoutError } from '../../errors/messaging.errors';
import { redisClient } from '../../testing/redis.fixture';
import { textMessage, useRedisBackends } from './redis-spec.fixture';

describe('RedisStreamsBackend waitForReplicas', () => {
  const { prefix, backend, names } = useRedisBackends('replicas');

  it('rejects a batch with PublishTimeoutError when fewer replicas have it; the master keeps it', async () => {
    const b = await backend({ waitForReplicas: { replicas: 1, timeoutMs: 50 } });
    const queue = `${names().service}.route`;
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        b.publish(textMessage({ queue }, `m${i}`), { mandatory: false }),
      ),
    );
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    const reason = (results[0] as PromiseRejectedResult).reason as Error;
    expect(reason).toBeInstanceOf(PublishTimeoutError);
    expect(reason.message).toMatch(/only 0 of the 1 replicas .* may or may not survive/);
    const redis = redisClient();
    try {
      expect(await redis.xlen(`${prefix}:q:${queue}`)).toBe(20);
    } finally {
      await redis.quit();
    }
  });

  it('changes nothing when off: a publish resolves on the master', async () => {
    const b = await backend();
    const queue = `${names().service}.route`;
    await expect(
      b.publish(textMessage({ queue }, 'plain'), { mandatory: false }),
    ).resolves.toBeUndefined();
  });
});
