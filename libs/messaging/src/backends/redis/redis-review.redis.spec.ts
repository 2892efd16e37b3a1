/**
 * Review of the Redis performance rework (issue 19, `git log 5817d8b..perf-redis`): one failing test
 * per defect found. Each fails on the code as merged (9da0fcd) and passes once its defect is fixed
 * (the fixes suggested in the review were checked by patching them in: tests 1, 4 and 5).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Redis } from 'ioredis';
import type { Settlement } from '../../backend/broker-backend.interface';
import { REDIS_URL, redisClient } from '../../testing/redis.fixture';
import { waitFor } from '../../testing/wait-for';
import { SETTLE_SCRIPT } from './redis-message-scripts';
import { ROUTE_RECHECK_MS } from './redis-routes';
import { PUBLISH_SCRIPT } from './redis-scripts';
import { ACK, answer, routeSpec, textMessage, useRedisBackends } from './redis-spec.fixture';
import { RedisStreamsBackend } from './index';

const { prefix, backend, names } = useRedisBackends('review');
const redis = redisClient();

afterAll(async () => {
  await redis.quit();
});

const DEAD: Settlement = {
  action: 'dead-letter',
  failure: { reason: 'handler-error', message: 'no', errorClass: 'Error', at: new Date() },
};

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

  it('5. writes a dead letter once when the connection drops before the settle script answered', async () => {
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
      const letters = await redis.xrange(dlq, '-', '+');
      // Observed: ['warm-up', 'once', 'once']: the script wrote its copy again although the
      // original was no longer pending (it does not check).
      expect(letters.map(([, f]) => f[f.indexOf('body') + 1])).toEqual(['warm-up', 'once']);
    } finally {
      await b.close();
      proxy.stop();
    }
  });
});

function within(ms: number, promise: Promise<unknown>): Promise<string> {
  return Promise.race([
    promise.then(() => 'done'),
    new Promise<string>((resolve) => setTimeout(resolve, ms, `still waiting after ${ms} ms`)),
  ]);
}

async function pendingCount(stream: string, group: string): Promise<number> {
  const [count] = (await redis.xpending(stream, group)) as [number];
  return Number(count);
}

/**
 * A TCP proxy to the local Redis: `cut()` drops every connection and refuses new ones (Redis
 * unreachable); `cutAfterCommandWith(text)` drops the connection that sends a command containing
 * `text` when Redis's next reply on it arrives (so the command ran, unanswered).
 */
async function redisProxy(): Promise<{
  port: number;
  readonly cuts: number;
  cut(): void;
  restore(): Promise<void>;
  cutAfterCommandWith(text: string): void;
  stop(): void;
}> {
  const target = new URL(REDIS_URL);
  const sockets = new Set<Socket>();
  let trigger: string | undefined;
  let cuts = 0;
  const onConnection = (client: Socket) => {
    const upstream = connect(Number(target.port || 6379), target.hostname);
    sockets.add(client).add(upstream);
    let victim = false;
    client.on('data', (chunk) => {
      if (trigger !== undefined && chunk.includes(trigger)) {
        trigger = undefined;
        victim = true;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!victim) return void client.write(chunk);
      victim = false;
      cuts++;
      client.destroy();
      upstream.destroy();
    });
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  };
  let server: Server | undefined;
  let port = 0;
  const listen = async () => {
    const listening = createServer(onConnection);
    await new Promise<void>((resolve) => listening.listen(port, '127.0.0.1', resolve));
    port = (listening.address() as { port: number }).port;
    server = listening;
  };
  const stop = () => {
    server?.close();
    server = undefined;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  await listen();
  return {
    port,
    get cuts() {
      return cuts;
    },
    cut: stop,
    restore: async () => {
      if (!server) await listen();
    },
    cutAfterCommandWith: (text) => (trigger = text),
    stop,
  };
}
