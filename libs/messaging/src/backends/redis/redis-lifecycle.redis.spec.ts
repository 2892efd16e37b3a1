/**
 * The lifecycle of `RedisStreamsBackend` on a real Redis: reconnection after its connections are
 * killed, status and consumer states, a close while a subscription starts, option and connection
 * errors. (Split from `redis.backend.redis.spec.ts`.)
 */
import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type {
  BackendStatus,
  OutgoingMessage,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { BackendClosedError, MessagingConfigError } from '../../errors/messaging.errors';
import {
  deleteRedisPrefix,
  REDIS_URL,
  redisClient,
  uniqueRedisPrefix,
} from '../../testing/redis.fixture';
import { waitFor } from '../../testing/wait-for';
import { RedisConnectError } from './redis-connection';
import { redisProxy } from './redis-proxy.fixture';
import { RedisStreamsBackend, type RedisStreamsBackendOptions } from './index';

const PREFIX = uniqueRedisPrefix('lifecycle');
const redis = redisClient();
let open: RedisStreamsBackend[] = [];
let counter = 0;

beforeAll(() => Logger.overrideLogger(false));

afterEach(async () => {
  const backends = open;
  open = [];
  await Promise.all(backends.map((b) => b.close()));
});

afterAll(async () => {
  await redis.quit();
  await deleteRedisPrefix(PREFIX);
}, 30_000);

async function backend(options: RedisStreamsBackendOptions = {}): Promise<RedisStreamsBackend> {
  const b = new RedisStreamsBackend({ url: REDIS_URL, prefix: PREFIX, blockMs: 100, ...options });
  open.push(b);
  await b.connect();
  return b;
}

function names(): { service: string; topic: string } {
  counter++;
  return { service: `svc${counter}`, topic: `t${counter}` };
}

function spec(service: string, topics: string[], extra: Partial<SubscriptionSpec> = {}) {
  return {
    service,
    queue: `${service}.route`,
    topics,
    external: false,
    concurrency: 5,
    ...extra,
  } satisfies SubscriptionSpec;
}

function message(target: { topic: string } | { queue: string }, body: string): OutgoingMessage {
  return {
    ...target,
    body: Buffer.from(body),
    headers: {},
    messageId: randomUUID(),
    contentType: 'text/plain',
    timestamp: Date.now(),
  };
}

const ACK: Settlement = { action: 'ack' };

describe('RedisStreamsBackend lifecycle', () => {
  it('reconnects after its connections are killed, and consumes again', async () => {
    const name = `reconnect-${randomUUID().slice(0, 8)}`;
    const b = await backend({ connectionName: name });
    const statuses: BackendStatus[] = [];
    b.on('status', (s) => statuses.push(s));
    const { service, topic } = names();
    const seen: string[] = [];
    await b.subscribe(spec(service, [topic]), async (d) => {
      if (d.replyTo !== undefined) return { action: 'ack', reply: { body: d.body, headers: {} } };
      seen.push(d.body.toString());
      return ACK;
    });
    const ids = ((await redis.client('LIST')) as string)
      .split('\n')
      .filter((line) => line.includes(` name=${name}:`))
      .map((line) => /\bid=(\d+)/.exec(line)?.[1] as string);
    // The command connection, the subscription's reader, and the pub/sub connection on which the
    // route is counted as consuming volatile requests.
    expect(ids.length).toBe(3);
    for (const id of ids) await redis.client('KILL', 'ID', id);
    await waitFor(() => statuses.includes('reconnecting'));
    await waitFor(() => b.status === 'connected' && b.consumerStates()[0]?.attached === true);
    await b.publish(message({ topic }, 'after the cut'), { mandatory: true });
    await waitFor(() => seen.length === 1);
    expect(seen).toEqual(['after the cut']);
    expect(statuses).toEqual(['reconnecting', 'connected']);
    // Volatile requests reach the route again once ioredis subscribed its channel again.
    await waitFor(
      async () =>
        (await b
          .request(message({ topic }, 'ping'), { timeoutMs: 2_000, durable: false })
          .then((reply) => reply.body.toString(), String)) === 'ping',
      { message: 'a volatile request answered after the reconnection' },
    );
  });

  it('reports its status and its consumers', async () => {
    const b = new RedisStreamsBackend({ url: REDIS_URL, prefix: PREFIX, blockMs: 100 });
    open.push(b);
    const statuses: BackendStatus[] = [];
    b.on('status', (s) => statuses.push(s));
    await b.connect();
    const { service, topic } = names();
    await b.subscribe(spec(service, [topic]), async () => ACK);
    expect(b.consumerStates()).toEqual([{ queue: `${service}.route`, attached: true }]);
    await b.close();
    expect(statuses).toEqual(['connecting', 'connected', 'closed']);
    expect(b.consumerStates()).toEqual([]);
    // Nothing was pending for it: its consumer name is gone from the group.
    expect(await redis.xinfo('CONSUMERS', `${PREFIX}:t:${topic}`, `${service}.route`)).toEqual([]);
  });

  it('close() while a subscription is starting leaves no reader behind and handles nothing', async () => {
    const { service, topic } = names();
    const name = `starting-${randomUUID().slice(0, 8)}`;
    const b = await backend({ connectionName: name });
    let handled = 0;
    const subscribed = b.subscribe(spec(service, [topic]), async () => {
      handled++;
      return ACK;
    });
    await new Promise((resolve) => setImmediate(resolve)); // inside start(): binding, reader connecting
    await b.close();
    await expect(subscribed).rejects.toThrow(BackendClosedError);
    expect(b.consumerStates()).toEqual([]);
    const connections = async () =>
      ((await redis.client('LIST')) as string)
        .split('\n')
        .filter((line) => line.includes(` name=${name}:`));
    await waitFor(async () => (await connections()).length === 0, {
      message: 'no connection of the closed backend left',
    });
    // The group was declared: a publish routes, and another instance of the route takes it, not a
    // reader of the closed backend.
    const other = await backend();
    let handledByOther = 0;
    await other.subscribe(spec(service, [topic]), async () => {
      handledByOther++;
      return ACK;
    });
    await other.publish(message({ topic }, 'after close'), { mandatory: true });
    await waitFor(() => handledByOther === 1);
    expect(handled).toBe(0);
    expect(await pendingCount(`${PREFIX}:t:${topic}`, `${service}.route`)).toBe(0);
    expect(await connections()).toEqual([]);
  });

  it('ends cancel() and close() in bounded time while Redis is unreachable', async () => {
    const proxy = await redisProxy();
    const b = new RedisStreamsBackend({
      url: `redis://127.0.0.1:${proxy.port}`,
      prefix: PREFIX,
      blockMs: 100,
      commandTimeoutMs: 500,
      closeTimeoutMs: 500,
    });
    try {
      await b.connect();
      const { service, topic } = names();
      const route = await b.subscribe(spec(service, [topic]), async () => ACK);
      proxy.cut(); // Redis unreachable from now on
      await waitFor(() => b.status === 'reconnecting');
      // Neither waits for Redis: the pub/sub connection has no command timeout, and its UNSUBSCRIBE,
      // then its QUIT, would wait in ioredis's offline queue until Redis is back.
      expect(await within(8_000, route.cancel())).toBe('done');
      expect(await within(8_000, b.close())).toBe('done');
    } finally {
      await proxy.restore(); // so that the close() above can end, whatever the outcome
      await b.close();
      proxy.stop();
    }
  }, 40_000);

  it('rejects bad options with what to change', () => {
    expect(() => new RedisStreamsBackend({ url: 'http://127.0.0.1:6379' })).toThrow(
      /Use redis:\/\/ or rediss:\/\//,
    );
    expect(
      () => new RedisStreamsBackend({ prefx: 'a' } as unknown as RedisStreamsBackendOptions),
    ).toThrow(/did you mean 'prefix'/);
    expect(() => new RedisStreamsBackend({ prefix: 'a:b' })).toThrow(MessagingConfigError);
    expect(() => new RedisStreamsBackend({ maxLength: 5 })).toThrow(/maxLength must be/);
  });

  it('fails connect() in bounded time when Redis is unreachable, naming the URL', async () => {
    const b = new RedisStreamsBackend({
      url: 'redis://user:secret@127.0.0.1:1',
      prefix: PREFIX,
      connectTimeoutMs: 500,
    });
    open.push(b);
    const startedAt = Date.now();
    const error = await b.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedisConnectError);
    expect((error as Error).message).toMatch(
      /could not connect to redis:\/\/user:\*\*\*@127\.0\.0\.1:1 within 500 ms/,
    );
    expect((error as Error).message).not.toContain('secret');
    expect(Date.now() - startedAt).toBeLessThan(3_000);
    expect(b.status).toBe('disconnected');
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
