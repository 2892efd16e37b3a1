/**
 * CloudEvents binary-mode attributes as `ce-` fields of a stream entry (`redis-cloudevents.ts`): what
 * a plain Redis client writes reaches the delivery's headers, what the backend publishes a plain
 * client reads as fields, and a retry keeps them.
 */
import { randomUUID } from 'node:crypto';
import type { Delivery, Settlement } from '../../backend/broker-backend.interface';
import { redisClient } from '../../testing/redis.fixture';
import { waitFor } from '../../testing/wait-for';
import { ACK, routeSpec, useRedisBackends } from './redis-spec.fixture';

const { prefix, backend, names } = useRedisBackends('cloudevents');
const redis = redisClient();

afterAll(() => redis.quit());

const RETRY: Settlement = {
  action: 'retry',
  delayMs: 50,
  failure: { reason: 'handler-error', message: 'once', errorClass: 'Error', at: new Date(0) },
};

describe('RedisStreamsBackend: CloudEvents ce- fields', () => {
  it("reads a plain producer's ce- fields as headers, also on a retry, and writes ce- headers as fields", async () => {
    const { service, topic } = names();
    const b = await backend();
    const seen: Delivery[] = [];
    await b.subscribe(routeSpec(service, [topic]), async (d) => {
      seen.push(d);
      return d.headers['ce-id'] === '42' && d.attempt === 1 ? RETRY : ACK;
    });
    await b.publish(
      {
        topic,
        body: Buffer.from('{"id":1}'),
        headers: { 'ce-specversion': '1.0', 'ce-id': '1', tenant: 'acme' },
        messageId: randomUUID(),
        contentType: 'application/json',
        timestamp: Date.now(),
      },
      { mandatory: true },
    );
    const stream = `${prefix}:t:${topic}`;
    await redis.xadd(
      stream,
      '*',
      'body',
      '{"id":42}',
      'content-type',
      'application/json',
      'ce-specversion',
      '1.0',
      'ce-id',
      '42',
      'ce-type',
      'order.created',
      'ce-source',
      '/shop',
    );
    await waitFor(() => seen.length === 3, { message: 'ours, the plain one, and its retry' });

    const [ours, plain, retried] = seen;
    expect(ours.headers).toEqual({ tenant: 'acme', 'ce-specversion': '1.0', 'ce-id': '1' });
    const cloudEvent = {
      'ce-specversion': '1.0',
      'ce-id': '42',
      'ce-type': 'order.created',
      'ce-source': '/shop',
    };
    expect(plain).toMatchObject({ attempt: 1, contentType: 'application/json' });
    expect(plain.headers).toEqual(cloudEvent);
    expect(retried).toMatchObject({ attempt: 2, messageId: plain.messageId });
    expect(retried.headers).toMatchObject(cloudEvent);

    // Ours, as a plain consumer reads it: the attributes are fields, the rest stays in `headers`.
    const [[, fields]] = await redis.xrange(stream, '-', '+', 'COUNT', 1);
    const byName = new Map<string, string>();
    for (let i = 0; i + 1 < fields.length; i += 2) byName.set(fields[i], fields[i + 1]);
    expect(byName.get('ce-specversion')).toBe('1.0');
    expect(byName.get('ce-id')).toBe('1');
    expect(JSON.parse(byName.get('headers') as string)).toEqual({ tenant: 'acme' });
  });
});
