/**
 * Review of the Redis performance rework (issue 19, `git log 5817d8b..perf-redis`): one failing test
 * per defect found. Each fails on the code as merged (9da0fcd) and passes once its defect is fixed
 * (the fixes suggested in the review were checked by patching them in: tests 1, 4 and 5).
 */
import type { Redis } from 'ioredis';
import { redisClient } from '../../testing/redis.fixture';
import { waitFor } from '../../testing/wait-for';
import { redisProxy } from './redis-proxy.fixture';
import { ROUTE_RECHECK_MS } from './redis-routes';
import { PUBLISH_SCRIPT } from './redis-scripts';
import { ACK, answer, routeSpec, textMessage, useRedisBackends } from './redis-spec.fixture';
import { RedisStreamsBackend } from './index';

const { prefix, backend, names } = useRedisBackends('review');
const redis = redisClient();

afterAll(async () => {
  await redis.quit();
});

/** The backend's private connections, for the tests that must hold one back. */
function internals(b: RedisStreamsBackend): { command: Redis; pubsub: { redis: Redis } } {
  return b as unknown as { command: Redis; pubsub: { redis: Redis } };
}

describe('Redis rework review', () => {
  it('1. a volatile request sent to the only instance while it cancels reaches the instance that took over', async () => {
    const { service, topic } = names();
    const spec = routeSpec(service, [topic]);
    const old = await backend();
    const oldRoute = await old.subscribe(spec, async (d) => answer(d, 'old'));
    const client = await backend();
    // Warm-up: the client listens for replies and has cached the bindings.
    const warm = await client.request(textMessage({ topic }, 'w'), {
      timeoutMs: 5_000,
      durable: false,
    });
    expect(warm.body.toString()).toBe('old');

    // The old instance is the only one, so the request script publishes the request to it. Its
    // pub/sub socket is held so that the request is still on its way when the route is cancelled.
    const socket = internals(old).pubsub.redis.stream;
    socket.pause();
    const pending = client.request(textMessage({ topic }, 'handover'), {
      timeoutMs: 3_000,
      durable: false,
    });
    await internals(client).command.ping(); // the request script ran (same connection, in order)
    // A new instance of the route starts (a rolling deploy), then the old one is cancelled.
    const successor = await backend();
    await successor.subscribe(spec, async (d) => answer(d, 'new'));
    const cancelled = oldRoute.cancel();
    socket.resume();
    await cancelled;
    // Given back to the list (what RedisRequestSource.onMessage means to do after stop), the new
    // instance answers it. Observed: RedisPubSub.unsubscribe removed the listener before Redis
    // confirmed the UNSUBSCRIBE, the request is dropped on arrival and the caller times out.
    await expect(pending.then((r) => r.body.toString())).resolves.toBe('new');
  });

  it('3. keeps the order of publishes when the periodic routing recheck meets NOSCRIPT', async () => {
    const { service, topic } = names();
    const b = await backend();
    await b.subscribe(routeSpec(service, [topic]), async () => ACK);
    await b.publish(textMessage({ topic }, 'm0'), { mandatory: true }); // the route is cached
    // A second later, with Redis's script cache empty (a restart with its data, a failover, SCRIPT
    // FLUSH): the next publish rechecks the route with the script, the following ones take the
    // fast path. NOSCRIPT is produced by a SHA Redis does not know, as after a restart.
    const realNow = Date.now.bind(Date);
    const clock = jest
      .spyOn(Date, 'now')
      .mockImplementation(() => realNow() + ROUTE_RECHECK_MS + 500);
    const realSha = PUBLISH_SCRIPT.sha;
    Object.defineProperty(PUBLISH_SCRIPT, 'sha', { value: '0'.repeat(40) });
    try {
      await Promise.all(
        ['m1', 'm2', 'm3'].map((body) =>
          b.publish(textMessage({ topic }, body), { mandatory: true }),
        ),
      );
    } finally {
      Object.defineProperty(PUBLISH_SCRIPT, 'sha', { value: realSha });
      clock.mockRestore();
    }
    const entries = await redis.xrange(`${prefix}:t:${topic}`, '-', '+');
    const bodies = entries.map(([, fields]) => fields[fields.indexOf('body') + 1]);
    // Observed: ['m0', 'm2', 'm3', 'm1']: m1's EVAL left after the NOSCRIPT reply, behind m2 and m3.
    expect(bodies).toEqual(['m0', 'm1', 'm2', 'm3']);
  });

  it('4. cancel() and close() end in bounded time while Redis is unreachable', async () => {
    const proxy = await redisProxy();
    const b = new RedisStreamsBackend({
      url: `redis://127.0.0.1:${proxy.port}`,
      prefix,
      blockMs: 100,
      commandTimeoutMs: 500,
      closeTimeoutMs: 500,
    });
    try {
      await b.connect();
      const { service, topic } = names();
      const route = await b.subscribe(routeSpec(service, [topic]), async () => ACK);
      proxy.cut(); // Redis unreachable from now on
      await waitFor(() => b.status === 'reconnecting');
      // Observed: both wait forever (the pub/sub connection has no command timeout, and its
      // UNSUBSCRIBE, then its QUIT, wait in ioredis's offline queue until Redis is back).
      expect(await within(8_000, route.cancel())).toBe('done');
      expect(await within(8_000, b.close())).toBe('done');
    } finally {
      await proxy.restore(); // so that the close() above can end, whatever the outcome
      await b.close();
      proxy.stop();
    }
  }, 40_000);
});

function within(ms: number, promise: Promise<unknown>): Promise<string> {
  return Promise.race([
    promise.then(() => 'done'),
    new Promise<string>((resolve) => setTimeout(resolve, ms, `still waiting after ${ms} ms`)),
  ]);
}
