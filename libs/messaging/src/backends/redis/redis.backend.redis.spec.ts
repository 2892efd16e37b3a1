/**
 * What the shared contract does not cover on Redis: topics first published after a wildcard
 * subscription, delays held in Redis across instances, claims of a dead consumer's deliveries,
 * bounded streams, external queues, routing in Lua. The lifecycle (reconnection, close, option and
 * connection errors) is in `redis-lifecycle.redis.spec.ts`.
 */
import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type {
  Delivery,
  FailureInfo,
  OutgoingMessage,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { topicMatches } from '../../backend/topic-matcher';
import {
  deleteRedisPrefix,
  REDIS_URL,
  redisClient,
  uniqueRedisPrefix,
} from '../../testing/redis.fixture';
import { waitFor } from '../../testing/wait-for';
import { TOPIC_MATCH_SCRIPT } from './redis-scripts';
import { RedisStreamsBackend, type RedisStreamsBackendOptions } from './index';

const PREFIX = uniqueRedisPrefix('backend');
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

describe('RedisStreamsBackend', () => {
  it('delivers a topic first published after a wildcard subscription', async () => {
    const { service, topic } = names();
    const consumer = await backend();
    const seen: string[] = [];
    await consumer.subscribe(spec(service, [`${topic}.#`]), async (d) => {
      seen.push(d.topic);
      return ACK;
    });
    // Another instance, which never subscribed, publishes topics nobody published before.
    const producer = await backend();
    await producer.publish(message({ topic: `${topic}.brand.new` }, 'a'), { mandatory: true });
    await producer.publish(message({ topic: `${topic}.other` }, 'b'), { mandatory: true });
    await expect(
      producer.publish(message({ topic: `x${topic}.other` }, 'c'), { mandatory: true }),
    ).rejects.toThrow(/No queue is bound/);
    await waitFor(() => seen.length === 2);
    expect(seen.sort()).toEqual([`${topic}.brand.new`, `${topic}.other`]);
  });

  it('holds a delayed retry in Redis: another instance delivers it after the first one closed', async () => {
    const { service, topic } = names();
    const first = await backend();
    const attempts: number[] = [];
    let settled = false;
    await first.subscribe(spec(service, [topic]), async (d: Delivery) => {
      attempts.push(d.attempt);
      settled = true;
      return {
        action: 'retry',
        delayMs: 600,
        failure: { reason: 'handler-error', message: 'later', errorClass: 'Error', at: new Date() },
      };
    });
    await first.publish(message({ topic }, 'x'), { mandatory: true });
    await waitFor(() => settled);
    await first.close();
    expect(await redis.zcard(`${PREFIX}:delayed`)).toBe(1);

    const second = await backend();
    const later: Delivery[] = [];
    await second.subscribe(spec(service, [topic]), async (d) => {
      later.push(d);
      return ACK;
    });
    await waitFor(() => later.length === 1, { timeoutMs: 5_000 });
    expect(attempts).toEqual([1]);
    expect(later[0]).toMatchObject({ attempt: 2, topic, redelivered: false });
    expect(later[0].headers['x-messaging-last-error']).toBe('later');
    expect(await redis.zcard(`${PREFIX}:delayed`)).toBe(0);
  });

  it('claims what a dead consumer left pending after claimIdleMs, and settles it', async () => {
    const { service, topic } = names();
    const consumer = await backend({ claimIdleMs: 300 });
    const seen: Delivery[] = [];
    const sub = await consumer.subscribe(spec(service, [topic]), async (d) => {
      seen.push(d);
      return ACK;
    });
    await sub.cancel();
    const producer = await backend();
    await producer.publish(message({ topic }, 'orphan'), { mandatory: true });
    // A consumer that reads it and dies without acknowledging.
    const stream = `${PREFIX}:t:${topic}`;
    const group = `${service}.route`;
    const readBefore = Date.now();
    await redis.xreadgroup('GROUP', group, 'dead-consumer', 'COUNT', 10, 'STREAMS', stream, '>');
    expect(await pendingCount(stream, group)).toBe(1);

    const rescuer = await backend({ claimIdleMs: 300 });
    let claimedAt = 0;
    await rescuer.subscribe(spec(service, [topic]), async (d) => {
      claimedAt = Date.now();
      seen.push(d);
      return ACK;
    });
    await waitFor(() => seen.length === 1, { timeoutMs: 5_000 });
    // Not before it was idle for claimIdleMs (1 ms for clock truncation).
    expect(claimedAt - readBefore).toBeGreaterThanOrEqual(299);
    expect(seen[0]).toMatchObject({ redelivered: true, attempt: 1, topic });
    expect(seen[0].body.toString()).toBe('orphan');
    await waitFor(async () => (await pendingCount(stream, group)) === 0);
  });

  it('dead-letters a delivery whose consumers keep dying, after deliveryLimit claims', async () => {
    const { service, topic } = names();
    const group = `${service}.route`;
    const stream = `${PREFIX}:t:${topic}`;
    const first = await backend();
    await (await first.subscribe(spec(service, [topic]), async () => ACK)).cancel();
    await first.publish(message({ topic }, 'crashes its consumer'), { mandatory: true });
    // Delivered once to a consumer that died with it.
    await redis.xreadgroup('GROUP', group, 'dead-consumer', 'COUNT', 1, 'STREAMS', stream, '>');
    const rescuer = await backend({ claimIdleMs: 200, deliveryLimit: 1 });
    let ran = 0;
    await rescuer.subscribe(spec(service, [topic]), async () => {
      ran++;
      return ACK;
    });
    await waitFor(async () => (await rescuer.deadLetters.list(service)).length === 1);
    const [letter] = await rescuer.deadLetters.list(service);
    expect(letter).toMatchObject({
      reason: 'delivery-limit',
      errorClass: 'DeliveryLimitExceeded',
      topic,
      queue: group,
    });
    expect(letter.body.toString()).toBe('crashes its consumer');
    expect(ran).toBe(0);
    await waitFor(async () => (await pendingCount(stream, group)) === 0);
  });

  it('keeps each stream about maxLength long', async () => {
    const { service, topic } = names();
    const b = await backend({ maxLength: 100 });
    const sub = await b.subscribe(spec(service, [topic]), async () => ACK);
    await sub.cancel(); // the group stays: publishes still route, nobody reads
    for (let i = 0; i < 1_000; i++)
      await b.publish(message({ topic }, `m${i}`), { mandatory: true });
    const length = await redis.xlen(`${PREFIX}:t:${topic}`);
    expect(length).toBeGreaterThanOrEqual(100);
    expect(length).toBeLessThan(300);
  });

  it('writes no empty headers and no timestamp field: a reader takes them as none and from the entry id', async () => {
    const { service, topic } = names();
    const b = await backend();
    const seen: Delivery[] = [];
    await b.subscribe(spec(service, [topic]), async (d) => {
      seen.push(d);
      return ACK;
    });
    const before = Date.now();
    await b.publish(message({ topic }, 'plain'), { mandatory: true }); // routed by the script
    await b.publish(message({ topic }, 'plain'), { mandatory: true }); // the cached XADD
    await b.publish(
      { ...message({ topic }, 'with'), headers: { tenant: 'a' } },
      { mandatory: true },
    );
    await waitFor(() => seen.length === 3);
    const entries = await redis.xrange(`${PREFIX}:t:${topic}`, '-', '+');
    const fieldNames = entries.map(([, fields]) => fields.filter((_, i) => i % 2 === 0));
    expect(fieldNames[1]).not.toContain('headers');
    expect(fieldNames[1]).not.toContain('timestamp');
    expect(fieldNames[2]).toContain('headers');
    expect(seen.map((d) => d.headers)).toEqual([{}, {}, { tenant: 'a' }]);
    // The script's add keeps the producer's time; the others have Redis's, from the entry id.
    expect(fieldNames[0]).toContain('timestamp');
    expect(seen[0].timestamp).toBeGreaterThanOrEqual(before);
    for (const i of [1, 2]) expect(seen[i].timestamp).toBe(Number(entries[i][0].split('-')[0]));
  });

  it('never trims dead letters nor queue streams: more than maxLength are all kept', async () => {
    const { service, topic } = names();
    const b = await backend({ maxLength: 100 });
    const count = 300; // three stream nodes of 100: MAXLEN ~ 100 would keep about 100
    let handled = 0;
    await b.subscribe(spec(service, [topic], { concurrency: 50 }), async () => {
      handled++;
      return {
        action: 'dead-letter',
        failure: { reason: 'unrecoverable', message: 'bad', errorClass: 'Error', at: new Date() },
      };
    });
    // In batches the consumer keeps up with: the topic stream itself is trimmed to about maxLength.
    for (let batch = 0; batch < count; batch += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          b.publish(message({ topic }, `m${batch + i}`), { mandatory: true }),
        ),
      );
      await waitFor(() => handled === batch + 50, { timeoutMs: 5_000 });
    }
    await waitFor(async () => (await redis.xlen(`${PREFIX}:q:${service}.dead-letter`)) >= count);
    const letters = await b.deadLetters.list(service);
    expect(letters.length).toBe(count);
    expect(new Set(letters.map((l) => l.body.toString())).size).toBe(count);

    // Direct sends wait unread in a queue stream: none is trimmed either.
    const idle = `${service}.idle`;
    await (await b.subscribe(spec(service, [], { queue: idle }), async () => ACK)).cancel();
    await Promise.all(
      Array.from({ length: count }, (_, i) =>
        b.publish(message({ queue: idle }, `d${i}`), { mandatory: true }),
      ),
    );
    expect(await redis.xlen(`${PREFIX}:q:${idle}`)).toBe(count);
  });

  it('keeps retries and replays of an external queue away from its other consumer groups', async () => {
    const { service } = names();
    const queue = `shared-${service}`;
    const foreign = `${PREFIX}:q:${queue}`;
    // Another application's group on the same stream.
    await redis.xgroup('CREATE', foreign, 'other-app', '0', 'MKSTREAM');
    const b = await backend();
    const attempts: number[] = [];
    let replayed = false;
    const failure: FailureInfo = {
      reason: 'handler-error',
      message: 'no',
      errorClass: 'Error',
      at: new Date(),
    };
    await b.subscribe(spec(service, [], { queue, external: true }), async (d) => {
      attempts.push(d.attempt);
      if (replayed) return ACK;
      if (d.attempt === 1) return { action: 'retry', delayMs: 0, failure };
      if (d.attempt === 2) return { action: 'retry', delayMs: 200, failure };
      return { action: 'dead-letter', failure };
    });
    await redis.xadd(foreign, '*', 'body', 'from another app');
    await waitFor(async () => (await b.deadLetters.list(service)).length === 1, {
      timeoutMs: 5_000,
    });
    replayed = true;
    expect(await b.deadLetters.replayAll(service)).toBe(1);
    await waitFor(() => attempts.length === 4);
    expect(attempts).toEqual([1, 2, 3, 1]);
    // The foreign stream holds the original only: the other group never sees a copy.
    expect(await redis.xlen(foreign)).toBe(1);
    const read = (await redis.xreadgroup(
      'GROUP',
      'other-app',
      'reader',
      'COUNT',
      10,
      'STREAMS',
      foreign,
      '>',
    )) as Array<[string, unknown[]]>;
    expect(read[0][1]).toHaveLength(1);
  });

  it('consumes an external queue a plain Redis client writes to', async () => {
    const { service } = names();
    const queue = `plain-${service}`;
    // Written before anyone consumed it: the queue keeps it.
    await redis.xadd(`${PREFIX}:q:${queue}`, '*', 'body', 'hello from redis-cli');
    const b = await backend();
    const seen: Delivery[] = [];
    await b.subscribe(spec(service, [], { queue, external: true }), async (d) => {
      seen.push(d);
      return ACK;
    });
    await b.publish(message({ queue }, 'direct send'), { mandatory: true });
    await waitFor(() => seen.length === 2);
    expect(seen.map((d) => d.body.toString())).toEqual(['hello from redis-cli', 'direct send']);
    expect(seen[0]).toMatchObject({ topic: queue, queue, attempt: 1 });
    await expect(
      b.publish(message({ queue: `${queue}-nobody` }, 'x'), { mandatory: true }),
    ).rejects.toThrow(/queue/);
  });

  it('routes in Lua exactly as topicMatches() does', async () => {
    const patterns = [
      'a.b',
      '*',
      'a.*',
      '*.b',
      'a.#',
      '#',
      '#.b',
      'a.#.b',
      '#.#',
      'a.*.#',
      '*.*.c',
    ];
    const topics = ['a', 'b', 'a.b', 'a.c', 'a.b.c', 'a.x.b', 'a.b.b', 'x.b', 'a.b.c.d', 'ab'];
    const mismatches: string[] = [];
    for (const pattern of patterns) {
      for (const topic of topics) {
        const lua = Number(await redis.eval(TOPIC_MATCH_SCRIPT.text, 0, pattern, topic)) === 1;
        if (lua !== topicMatches(pattern, topic)) mismatches.push(`${pattern} ~ ${topic}: ${lua}`);
      }
    }
    expect(mismatches).toEqual([]);
  });
});

async function pendingCount(stream: string, group: string): Promise<number> {
  const [count] = (await redis.xpending(stream, group)) as [number];
  return Number(count);
}
