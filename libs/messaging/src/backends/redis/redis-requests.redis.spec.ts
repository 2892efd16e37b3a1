/**
 * Volatile requests on Redis, through the backend alone: no stream entry, one instance of each
 * service that consumes now (competing instances share them), refused at once when none does, the
 * route's concurrency, and bindings made by other instances seen by a requester that cached them.
 */
import type { Redis } from 'ioredis';
import type { Delivery } from '../../backend/broker-backend.interface';
import { UnroutableError } from '../../errors/messaging.errors';
import {
  deleteRedisPrefix,
  REDIS_URL,
  redisClient,
  uniqueRedisPrefix,
} from '../../testing/redis.fixture';
import { waitFor } from '../../testing/wait-for';
import { MAX_DIRECT_REQUEST_BYTES } from './redis-message-scripts';
import { answer, routeSpec, textMessage, useRedisBackends } from './redis-spec.fixture';
import { RedisStreamsBackend } from './index';

const { prefix, backend, names } = useRedisBackends('requests');
const redis = redisClient();
const VOLATILE = { timeoutMs: 5_000, durable: false } as const;
/** The other database of the test of databases. */
const OTHER_DB = 13;

afterAll(async () => {
  await redis.quit();
  await deleteRedisPrefix(prefix, 100_000, OTHER_DB);
});

/** The backend's private connections, for the tests that must hold one back. */
function internals(b: RedisStreamsBackend): { command: Redis; pubsub: { redis: Redis } } {
  return b as unknown as { command: Redis; pubsub: { redis: Redis } };
}

describe('RedisStreamsBackend volatile requests', () => {
  it('leave no stream entry and no list behind, and carry their headers and deadline', async () => {
    const { service, topic } = names();
    const server = await backend();
    const seen: Delivery[] = [];
    await server.subscribe(routeSpec(service, [topic]), async (d) => {
      seen.push(d);
      return answer(d, `echo ${d.body.toString()}`);
    });
    const client = await backend();
    const deadline = Date.now() + 5_000;
    const reply = await client.request(
      textMessage({ topic }, 'hi', { 'x-messaging-deadline': deadline, tenant: 'acme' }),
      VOLATILE,
    );
    expect(reply.body.toString()).toBe('echo hi');
    expect(seen[0]).toMatchObject({
      topic,
      queue: `${service}.route`,
      attempt: 1,
      redelivered: false,
      headers: { 'x-messaging-deadline': deadline, tenant: 'acme' },
    });
    // The topic's stream holds nothing (only the group the subscription created), nor does a list.
    expect(await redis.xlen(`${prefix}:t:${topic}`)).toBe(0);
    expect(await redis.exists(`${prefix}:rq:${service}.route`)).toBe(0);
  });

  it('refuses at once a request to a route whose only instance closed', async () => {
    const { service, topic } = names();
    const server = await backend();
    await server.subscribe(routeSpec(service, [topic]), async (d) => answer(d, 'up'));
    const client = await backend();
    await expect(client.request(textMessage({ topic }, 'a'), VOLATILE)).resolves.toBeDefined();
    await server.close();
    const startedAt = Date.now();
    await expect(
      client.request(textMessage({ topic }, 'b'), { timeoutMs: 30_000, durable: false }),
    ).rejects.toBeInstanceOf(UnroutableError);
    expect(Date.now() - startedAt).toBeLessThan(1_000);
    // Nothing was left waiting for a later instance.
    expect(await redis.exists(`${prefix}:rq:${service}.route`)).toBe(0);
  });

  it('refuses a request when the route was cancelled, and reaches it again once subscribed again', async () => {
    const { service, topic } = names();
    const server = await backend();
    const subscription = await server.subscribe(routeSpec(service, [topic]), async (d) =>
      answer(d, 'first'),
    );
    await subscription.cancel();
    await expect(server.request(textMessage({ topic }, 'x'), VOLATILE)).rejects.toBeInstanceOf(
      UnroutableError,
    );
    await server.subscribe(routeSpec(service, [topic]), async (d) => answer(d, 'second'));
    const reply = await server.request(textMessage({ topic }, 'y'), VOLATILE);
    expect(reply.body.toString()).toBe('second');
  });

  it('shares requests between competing instances, each handled once', async () => {
    const { service, topic } = names();
    const handled = new Map<string, string[]>();
    for (const label of ['a', 'b']) {
      const instance = await backend();
      handled.set(label, []);
      await instance.subscribe(routeSpec(service, [topic], { concurrency: 2 }), async (d) => {
        handled.get(label)?.push(d.body.toString());
        await new Promise((resolve) => setTimeout(resolve, 5));
        return answer(d, label);
      });
    }
    const client = await backend();
    const total = 40;
    const replies = await Promise.all(
      Array.from({ length: total }, (_, i) =>
        client.request(textMessage({ topic }, `r${i}`), VOLATILE),
      ),
    );
    const all = [...(handled.get('a') ?? []), ...(handled.get('b') ?? [])];
    expect(all.sort()).toEqual(Array.from({ length: total }, (_, i) => `r${i}`).sort());
    expect(handled.get('a')?.length).toBeGreaterThan(0);
    expect(handled.get('b')?.length).toBeGreaterThan(0);
    expect(new Set(replies.map((r) => r.body.toString()))).toEqual(new Set(['a', 'b']));
  });

  it('reaches one instance of each service whose route matches, and no route that does not', async () => {
    const { service, topic } = names();
    const counts = new Map<string, number>();
    const count = (label: string) => counts.set(label, (counts.get(label) ?? 0) + 1);
    for (const [label, svc, pattern] of [
      ['one-1', `${service}-one`, `${topic}.*`],
      ['one-2', `${service}-one`, `${topic}.*`],
      ['two', `${service}-two`, `${topic}.#`],
      ['other', `${service}-other`, `${topic}.elsewhere`],
    ]) {
      const instance = await backend();
      await instance.subscribe(routeSpec(svc, [pattern]), async (d) => {
        count(label);
        return answer(d, label);
      });
    }
    const client = await backend();
    await client.request(textMessage({ topic: `${topic}.created` }, 'x'), VOLATILE);
    await waitFor(() => (counts.get('two') ?? 0) === 1);
    await waitFor(() => (counts.get('one-1') ?? 0) + (counts.get('one-2') ?? 0) === 1);
    expect(counts.get('other')).toBeUndefined();
  });

  it("takes no more than the route's concurrency at once", async () => {
    const { service, topic } = names();
    const server = await backend();
    let running = 0;
    let peak = 0;
    await server.subscribe(routeSpec(service, [topic], { concurrency: 3 }), async (d) => {
      peak = Math.max(peak, ++running);
      await new Promise((resolve) => setTimeout(resolve, 20));
      running--;
      return answer(d, 'done');
    });
    const client = await backend();
    await Promise.all(
      Array.from({ length: 15 }, (_, i) =>
        client.request(textMessage({ topic }, `${i}`), VOLATILE),
      ),
    );
    expect(peak).toBe(3);
  });

  it('gives a request back to the list when its only instance is busy; another instance takes it', async () => {
    const { service, topic } = names();
    let release!: () => void;
    const busy = new Promise<void>((resolve) => (release = resolve));
    const handledBy: string[] = [];
    const first = await backend();
    await first.subscribe(routeSpec(service, [topic], { concurrency: 1 }), async (d) => {
      handledBy.push(`first:${d.body.toString()}`);
      if (d.body.toString() === 'slow') await busy;
      return answer(d, 'first');
    });
    const client = await backend();
    const slow = client.request(textMessage({ topic }, 'slow'), VOLATILE);
    await waitFor(() => handledBy.length === 1);
    // Published to the only instance, which has no free slot: back to the route's list.
    const waiting = client.request(textMessage({ topic }, 'queued'), VOLATILE);
    await waitFor(async () => (await redis.llen(`${prefix}:rq:${service}.route`)) === 1);
    const second = await backend();
    await second.subscribe(routeSpec(service, [topic]), async (d) => {
      handledBy.push(`second:${d.body.toString()}`);
      return answer(d, 'second');
    });
    expect((await waiting).body.toString()).toBe('second');
    release();
    expect((await slow).body.toString()).toBe('first');
    expect(handledBy).toEqual(['first:slow', 'second:queued']);
  });

  it('reaches a route that another instance bound after this requester read the bindings', async () => {
    const { service, topic } = names();
    const first = await backend();
    await first.subscribe(routeSpec(`${service}-first`, [`${topic}.#`]), async (d) =>
      answer(d, 'first'),
    );
    const client = await backend();
    // The client reads (and caches) the bindings with this request.
    await client.request(textMessage({ topic: `${topic}.a` }, 'x'), VOLATILE);
    const seenByLate: string[] = [];
    const late = await backend();
    await late.subscribe(routeSpec(`${service}-late`, [`${topic}.a`]), async (d) => {
      seenByLate.push(d.body.toString());
      return answer(d, 'late');
    });
    // The very next request reaches the new route too: the cached bindings are checked in Redis.
    await client.request(textMessage({ topic: `${topic}.a` }, 'y'), VOLATILE);
    await waitFor(() => seenByLate.length === 1);
    expect(seenByLate).toEqual(['y']);
    // And a topic that appears later, matched by a wildcard route.
    const reply = await client.request(textMessage({ topic: `${topic}.brand.new` }, 'z'), VOLATILE);
    expect(reply.body.toString()).toBe('first');
  });

  it('reaches the instance that took over when the only instance is cancelled while the request is on its way', async () => {
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
    // The old instance's listener lasts until Redis confirmed the UNSUBSCRIBE: the request, which
    // arrives before, goes back to the list and the new instance answers it. (Dropping the listener
    // at once dropped the request on arrival: the caller timed out.)
    await expect(pending.then((r) => r.body.toString())).resolves.toBe('new');
  });

  it('sends a large request to the only instance through the list, not over its pub/sub connection', async () => {
    const { service, topic } = names();
    const server = await backend();
    await server.subscribe(routeSpec(service, [topic]), async (d) =>
      answer(d, `${d.body.length} bytes`),
    );
    const client = await backend();
    await client.request(textMessage({ topic }, 'warm-up'), VOLATILE);
    // Held: a request published to the instance would wait in the socket; one in the list is seen.
    const socket = internals(server).pubsub.redis.stream;
    socket.pause();
    const body = 'x'.repeat(MAX_DIRECT_REQUEST_BYTES + 1);
    const pending = client.request(textMessage({ topic }, body), VOLATILE);
    try {
      await waitFor(async () => (await redis.llen(`${prefix}:rq:${service}.route`)) === 1, {
        message: 'the large request in the list',
      });
    } finally {
      socket.resume();
    }
    expect((await pending).body.toString()).toBe(`${body.length} bytes`);
  });

  it('stays in its database: a route in another database with the same prefix does not take it', async () => {
    const { service, topic } = names();
    const other = new RedisStreamsBackend({
      url: `${REDIS_URL}/${OTHER_DB}`,
      prefix,
      blockMs: 100,
    });
    const handledInOtherDb: string[] = [];
    try {
      await other.connect();
      await other.subscribe(routeSpec(service, [topic]), async (d: Delivery) => {
        handledInOtherDb.push(d.body.toString());
        return answer(d, `from db ${OTHER_DB}`);
      });
      // This app (db 0) has the same route bound, but no instance consuming it now.
      const here = await backend();
      await (
        await here.subscribe(routeSpec(service, [topic]), async (d) => answer(d, 'db 0'))
      ).cancel();
      const outcome = await here
        .request(textMessage({ topic }, 'a db 0 request'), { timeoutMs: 2_000, durable: false })
        .then(
          (r) => `answered: ${r.body.toString()}`,
          (e: Error) => e,
        );
      // Pub/sub channels are the whole server's: without the database in the channel's name, the
      // other database's instance was counted (PUBSUB NUMSUB) and the request published to it.
      expect(outcome).toBeInstanceOf(UnroutableError);
      expect(handledInOtherDb).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it('reaches a route bound after Redis lost its data, though the requester cached bindings before', async () => {
    // A prefix of its own: its routing generation starts from nothing, as after a loss of data.
    const own = uniqueRedisPrefix('requests-loss');
    const opened: RedisStreamsBackend[] = [];
    const open = async () => {
      const b = new RedisStreamsBackend({ url: REDIS_URL, prefix: own, blockMs: 100 });
      opened.push(b);
      await b.connect();
      return b;
    };
    try {
      const { service, topic } = names();
      const first = await open();
      const before = await first.subscribe(routeSpec(`${service}-before`, [topic]), async (d) =>
        answer(d, 'before'),
      );
      const client = await open();
      // The client caches the bindings and their generation.
      expect((await client.request(textMessage({ topic }, 'a'), VOLATILE)).body.toString()).toBe(
        'before',
      );
      await before.cancel();
      await deleteRedisPrefix(own); // Redis lost its data (restarted empty, keys deleted)
      const second = await open();
      await second.subscribe(routeSpec(`${service}-after`, [topic]), async (d) =>
        answer(d, 'after'),
      );
      // A counter would be back at the generation the client cached, whose bindings name only the
      // cancelled route: UnroutableError.
      const reply = await client.request(textMessage({ topic }, 'b'), VOLATILE);
      expect(reply.body.toString()).toBe('after');
    } finally {
      await Promise.all(opened.map((b) => b.close()));
      await deleteRedisPrefix(own);
    }
  });

  it('sends a durable request as a stream entry, which waits for an instance', async () => {
    const { service, topic } = names();
    const declaring = await backend();
    await (
      await declaring.subscribe(routeSpec(service, [topic]), async (d) => answer(d, 'x'))
    ).cancel();
    const client = await backend();
    await expect(client.request(textMessage({ topic }, 'v'), VOLATILE)).rejects.toBeInstanceOf(
      UnroutableError,
    );
    const waiting = client.request(textMessage({ topic }, 'd'), {
      timeoutMs: 10_000,
      durable: true,
    });
    await waitFor(async () => (await redis.xlen(`${prefix}:t:${topic}`)) === 1);
    const server = await backend();
    await server.subscribe(routeSpec(service, [topic]), async (d) => answer(d, 'durable'));
    expect((await waiting).body.toString()).toBe('durable');
  });
});
