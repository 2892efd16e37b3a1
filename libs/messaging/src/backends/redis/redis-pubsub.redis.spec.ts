/**
 * `RedisPubSub` on a real Redis: a channel's listener lasts until Redis confirmed its `UNSUBSCRIBE`
 * (what was published before still reaches it), a subscription made right after keeps its own
 * listener, and a subscription that failed keeps none.
 */
import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import { REDIS_URL, redisClient, uniqueRedisPrefix } from '../../testing/redis.fixture';
import { waitFor } from '../../testing/wait-for';
import { RedisPubSub } from './redis-pubsub';

const prefix = uniqueRedisPrefix('pubsub');
const redis = redisClient();
let open: RedisPubSub[] = [];
let counter = 0;

afterEach(async () => {
  await Promise.all(open.map((p) => p.close()));
  open = [];
});

afterAll(async () => {
  await redis.quit();
});

/** A pub/sub connection to the specs' Redis, and its ioredis client once opened. */
function pubsub(): { pubsub: RedisPubSub; client(): Redis } {
  let client: Redis | undefined;
  const p = new RedisPubSub(
    () => (client = new Redis(REDIS_URL, { lazyConnect: true })),
    async (r) => r.connect(),
    2_000,
  );
  open.push(p);
  return { pubsub: p, client: () => client as Redis };
}

function channel(): string {
  return `${prefix}:ch${++counter}`;
}

async function subscribers(name: string): Promise<number> {
  const [, count] = (await redis.pubsub('NUMSUB', name)) as [string, number];
  return Number(count);
}

describe('RedisPubSub', () => {
  it('hands what was published before Redis confirmed the UNSUBSCRIBE to the listener', async () => {
    const { pubsub: p, client } = pubsub();
    const name = channel();
    const received: string[] = [];
    const listener = (message: Buffer) => received.push(message.toString());
    await p.subscribe(name, listener);
    // Held: the message is on its way when the UNSUBSCRIBE is sent.
    client().stream.pause();
    expect(await redis.publish(name, 'on its way')).toBe(1);
    const unsubscribed = p.unsubscribe(name, listener);
    client().stream.resume();
    await unsubscribed;
    // Dropping the listener at once lost it (its sender's request then timed out).
    expect(received).toEqual(['on its way']);
    expect(await subscribers(name)).toBe(0);
  });

  it('keeps the listener of a subscription made right after an unsubscribe', async () => {
    const { pubsub: p } = pubsub();
    const name = channel();
    const received: string[] = [];
    const first = (message: Buffer) => received.push(`first: ${message.toString()}`);
    const second = (message: Buffer) => received.push(`second: ${message.toString()}`);
    await p.subscribe(name, first);
    const unsubscribed = p.unsubscribe(name, first);
    await p.subscribe(name, second);
    await unsubscribed; // confirmed after the second listener was set: that one stays
    expect(await subscribers(name)).toBe(1);
    await redis.publish(name, 'hello');
    await waitFor(() => received.length === 1);
    expect(received).toEqual(['second: hello']);
    // The first listener's unsubscribe again is nothing now.
    await p.unsubscribe(name, first);
    expect(await subscribers(name)).toBe(1);
  });

  it('keeps no listener when the SUBSCRIBE failed', async () => {
    // A client whose SUBSCRIBE fails (its connection closed); it emits what the test sends.
    const fake = Object.assign(new EventEmitter(), {
      status: 'ready',
      subscribe: () => Promise.reject(new Error('Connection is closed.')),
      quit: () => Promise.resolve('OK'),
      disconnect: () => undefined,
    });
    const p = new RedisPubSub(
      () => fake as unknown as Redis,
      async () => undefined,
      100,
    );
    open.push(p);
    const received: string[] = [];
    await expect(p.subscribe('c', (message) => received.push(message.toString()))).rejects.toThrow(
      'Connection is closed.',
    );
    fake.emit('messageBuffer', Buffer.from('c'), Buffer.from('stray'));
    expect(received).toEqual([]);
  });
});
