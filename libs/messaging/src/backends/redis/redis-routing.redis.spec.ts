/**
 * The publishers' routing cache (`RedisRoutes`) against changes made by other processes: a route
 * subscribed elsewhere is reached by the next publish, a stream deleted is noticed by the next
 * publish, groups destroyed by hand within `ROUTE_RECHECK_MS`; the order of publishes kept when the
 * recheck meets a Redis that lost its scripts.
 */
import type { Delivery } from '../../backend/broker-backend.interface';
import { UnroutableError } from '../../errors/messaging.errors';
import { redisClient } from '../../testing/redis.fixture';
import { waitFor } from '../../testing/wait-for';
import { ROUTE_RECHECK_MS } from './redis-routes';
import { PUBLISH_SCRIPT } from './redis-scripts';
import { ACK, routeSpec, textMessage, useRedisBackends } from './redis-spec.fixture';

const { prefix, backend, names } = useRedisBackends('routing');
const redis = redisClient();
const MANDATORY = { mandatory: true } as const;

afterAll(async () => {
  await redis.quit();
});

describe('RedisStreamsBackend routing cache', () => {
  it('reaches a route another instance subscribed after this publisher cached the topic', async () => {
    const { service, topic } = names();
    const seen = new Map<string, string[]>();
    const consume = (label: string) => async (d: Delivery) => {
      seen.set(label, [...(seen.get(label) ?? []), d.body.toString()]);
      return ACK;
    };
    const subject = `${topic}.created`;
    const first = await backend();
    await first.subscribe(routeSpec(`${service}-a`, [subject]), consume('a'));
    const publisher = await backend();
    await publisher.publish(textMessage({ topic: subject }, 'before'), MANDATORY); // cached now
    const second = await backend();
    await second.subscribe(routeSpec(`${service}-b`, [`${topic}.*`]), consume('b'));
    await publisher.publish(textMessage({ topic: subject }, 'after'), MANDATORY);
    await waitFor(() => seen.get('a')?.length === 2 && seen.get('b')?.length === 1);
    expect(seen.get('b')).toEqual(['after']);
  });

  it("notices at the next publish that a topic's stream was deleted", async () => {
    const { service, topic } = names();
    const consumer = await backend();
    await (await consumer.subscribe(routeSpec(service, [topic]), async () => ACK)).cancel();
    const publisher = await backend();
    await publisher.publish(textMessage({ topic }, 'kept'), MANDATORY);
    await redis.del(`${prefix}:t:${topic}`);
    await expect(
      publisher.publish(textMessage({ topic }, 'lost'), MANDATORY),
    ).rejects.toBeInstanceOf(UnroutableError);
    // Without `mandatory`, dropped as before: no stream is created for nobody.
    await publisher.publish(textMessage({ topic }, 'dropped'), { mandatory: false });
    expect(await redis.exists(`${prefix}:t:${topic}`)).toBe(0);
  });

  it(`sees a binding removed by hand (its group destroyed) within ${ROUTE_RECHECK_MS} ms`, async () => {
    const { service, topic } = names();
    const queue = `${service}.route`;
    const consumer = await backend();
    await (await consumer.subscribe(routeSpec(service, [topic]), async () => ACK)).cancel();
    const publisher = await backend();
    await publisher.publish(textMessage({ topic }, 'routed'), MANDATORY);
    // Retiring the service as docs/backends.md says: the binding and the group go, the stream stays.
    await redis.hdel(`${prefix}:bindings`, queue);
    await redis.xgroup('DESTROY', `${prefix}:t:${topic}`, queue);
    const removedAt = Date.now();
    await waitFor(
      () =>
        publisher.publish(textMessage({ topic }, 'probe'), MANDATORY).then(
          () => false,
          (error: unknown) => error instanceof UnroutableError,
        ),
      { timeoutMs: ROUTE_RECHECK_MS + 2_000 },
    );
    expect(Date.now() - removedAt).toBeLessThan(ROUTE_RECHECK_MS + 1_000);
  });

  it('notices at the next direct send that a queue lost its stream, and so its group', async () => {
    const { service } = names();
    const queue = `${service}.direct`;
    const consumer = await backend();
    await (await consumer.subscribe(routeSpec(service, [], { queue }), async () => ACK)).cancel();
    const publisher = await backend();
    await publisher.publish(textMessage({ queue }, 'one'), MANDATORY);
    await publisher.publish(textMessage({ queue }, 'two'), MANDATORY);
    expect(await redis.xlen(`${prefix}:q:${queue}`)).toBe(2);
    await redis.del(`${prefix}:q:${queue}`);
    await expect(publisher.publish(textMessage({ queue }, 'three'), MANDATORY)).rejects.toThrow(
      /queue/,
    );
    // A send that is not mandatory keeps the message for the queue's future consumer, group or not.
    await publisher.publish(textMessage({ queue }, 'kept'), { mandatory: false });
    expect(await redis.xlen(`${prefix}:q:${queue}`)).toBe(1);
    await expect(publisher.publish(textMessage({ queue }, 'four'), MANDATORY)).rejects.toThrow(
      /queue/,
    );
  });

  it('keeps the order of publishes when the periodic routing recheck meets NOSCRIPT', async () => {
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
    // With EVALSHA, the recheck's NOSCRIPT reply sent m1 again (EVAL) behind m2 and m3, which took
    // the fast path: ['m0', 'm2', 'm3', 'm1'].
    expect(bodies).toEqual(['m0', 'm1', 'm2', 'm3']);
  });
});
