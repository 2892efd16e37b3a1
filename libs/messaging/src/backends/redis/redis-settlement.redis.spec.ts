/**
 * Settlement on Redis, through the backend alone: batched acknowledgements delete what a queue
 * stream of ours handled, and a failure's copy is written before its original is acknowledged, in
 * one script, so that a copy that cannot be written leaves the original pending.
 */
import type { Settlement } from '../../backend/broker-backend.interface';
import { redisClient } from '../../testing/redis.fixture';
import { waitFor } from '../../testing/wait-for';
import { ACK, routeSpec, textMessage, useRedisBackends } from './redis-spec.fixture';

const { prefix, backend, names } = useRedisBackends('settle');
const redis = redisClient();

afterAll(async () => {
  await redis.quit();
});

async function pendingCount(stream: string, group: string): Promise<number> {
  const [count] = (await redis.xpending(stream, group)) as [number];
  return Number(count);
}

describe('RedisStreamsBackend settlement', () => {
  it('acknowledges handled deliveries and deletes them from a queue stream of ours', async () => {
    const { service, topic } = names();
    const queue = `${service}.route`;
    const b = await backend();
    let handled = 0;
    await b.subscribe(routeSpec(service, [topic], { concurrency: 20 }), async () => {
      handled++;
      return ACK;
    });
    const total = 200;
    await Promise.all(
      Array.from({ length: total }, (_, i) =>
        b.publish(textMessage(i % 2 ? { topic } : { queue }, `m${i}`), { mandatory: true }),
      ),
    );
    await waitFor(() => handled === total);
    await waitFor(
      async () =>
        (await pendingCount(`${prefix}:t:${topic}`, queue)) === 0 &&
        (await pendingCount(`${prefix}:q:${queue}`, queue)) === 0,
    );
    // Topic streams keep their entries (other groups may read them); the queue stream holds nothing.
    expect(await redis.xlen(`${prefix}:t:${topic}`)).toBe(total / 2);
    expect(await redis.xlen(`${prefix}:q:${queue}`)).toBe(0);
  });

  it('leaves a delivery pending when its dead letter cannot be written, and settles it once it can', async () => {
    const { service, topic } = names();
    const queue = `${service}.route`;
    const dlq = `${prefix}:q:${service}.dead-letter`;
    // Something that is not a stream where the dead letters go: XADD fails there.
    await redis.set(dlq, 'in the way');
    const b = await backend({ claimIdleMs: 300 });
    const errors: string[] = [];
    b.on('error', (error) => errors.push(error.message));
    let attempts = 0;
    const deadLetter: Settlement = {
      action: 'dead-letter',
      failure: { reason: 'unrecoverable', message: 'bad', errorClass: 'Error', at: new Date() },
    };
    await b.subscribe(routeSpec(service, [topic]), async () => {
      attempts++;
      return deadLetter;
    });
    await b.publish(textMessage({ topic }, 'poison'), { mandatory: true });
    await waitFor(() => errors.some((e) => e.includes('Could not settle')));
    // Not acknowledged: a MULTI would have run its XACK after the failed XADD.
    expect(await pendingCount(`${prefix}:t:${topic}`, queue)).toBe(1);
    await redis.del(dlq);
    // Claimed again after claimIdleMs (from itself), dead-lettered this time, then acknowledged.
    await waitFor(async () => (await b.listDeadLetters(service)).length === 1, {
      timeoutMs: 5_000,
    });
    await waitFor(async () => (await pendingCount(`${prefix}:t:${topic}`, queue)) === 0);
    expect(attempts).toBeGreaterThanOrEqual(2);
    const [letter] = await b.listDeadLetters(service);
    expect(letter.body.toString()).toBe('poison');
  });
});
