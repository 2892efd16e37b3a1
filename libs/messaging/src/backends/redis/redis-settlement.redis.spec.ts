/**
 * Settlement on Redis, through the backend alone: batched acknowledgements delete what a queue
 * stream of ours handled, and a failure's copy is written before its original is acknowledged, in
 * one script, so that a copy that cannot be written leaves the original pending.
 */
import type { Settlement } from '../../backend/broker-backend.interface';
import { redisClient } from '../../testing/redis.fixture';
import { waitFor } from '../../testing/wait-for';
import { SETTLE_SCRIPT } from './redis-message-scripts';
import { redisProxy } from './redis-proxy.fixture';
import { ACK, routeSpec, textMessage, useRedisBackends } from './redis-spec.fixture';
import { RedisStreamsBackend } from './index';

const { prefix, backend, names } = useRedisBackends('settle');
const redis = redisClient();

afterAll(async () => {
  await redis.quit();
});

const DEAD: Settlement = {
  action: 'dead-letter',
  failure: { reason: 'handler-error', message: 'no', errorClass: 'Error', at: new Date() },
};

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
    await waitFor(async () => (await b.deadLetters.list(service)).length === 1, {
      timeoutMs: 5_000,
    });
    await waitFor(async () => (await pendingCount(`${prefix}:t:${topic}`, queue)) === 0);
    expect(attempts).toBeGreaterThanOrEqual(2);
    const [letter] = await b.deadLetters.list(service);
    expect(letter.body.toString()).toBe('poison');
  });

  it('writes a dead letter once when the connection drops before the settle script answered', async () => {
    const proxy = await redisProxy();
    const b = new RedisStreamsBackend({
      url: `redis://127.0.0.1:${proxy.port}`,
      prefix,
      blockMs: 100,
    });
    try {
      await b.connect();
      const { service, topic } = names();
      await b.subscribe(routeSpec(service, [topic]), async () => DEAD);
      const dlq = `${prefix}:q:${service}.dead-letter`;
      await b.publish(textMessage({ topic }, 'warm-up'), { mandatory: true }); // script cached
      await waitFor(async () => (await redis.xlen(dlq)) === 1);
      // The connection that sends the next settle script is cut once Redis has run it, before its
      // reply arrives; ioredis reconnects and sends the unanswered command again.
      proxy.cutAfterCommandWith(SETTLE_SCRIPT.sha);
      await b.publish(textMessage({ topic }, 'once'), { mandatory: true });
      await waitFor(() => proxy.cuts === 1, { message: 'the cut after the settle script' });
      await waitFor(
        async () => (await pendingCount(`${prefix}:t:${topic}`, `${service}.route`)) === 0,
      );
      await waitFor(() => b.status === 'connected');
      // Sent on the same connection after the script ioredis sends again: once its dead letter is
      // there, that script has run.
      await b.publish(textMessage({ topic }, 'after'), { mandatory: true });
      await waitFor(async () => (await redis.xlen(dlq)) >= 3);
      const letters = await redis.xrange(dlq, '-', '+');
      // ioredis sent the script again after the reconnection; without its check that the original
      // is still pending, it wrote its copy again: ['warm-up', 'once', 'once', 'after'].
      expect(letters.map(([, f]) => f[f.indexOf('body') + 1])).toEqual([
        'warm-up',
        'once',
        'after',
      ]);
    } finally {
      await b.close();
      proxy.stop();
    }
  });
});
