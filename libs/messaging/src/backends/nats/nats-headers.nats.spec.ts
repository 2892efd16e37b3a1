import { Logger } from '@nestjs/common';
import type {
  Delivery,
  OutgoingMessage,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { deleteNatsObjects, NATS_URL, natsAdmin, natsRunPrefix } from '../../testing/nats.fixture';
import { waitFor } from '../../testing/wait-for';
import { NatsBackend } from './index';

const PREFIX = natsRunPrefix('nats-hd');

/** Headers over the server: a foreign producer's, our own, and the server's (`Nats-…`) kept apart. */
describe('NatsBackend headers', () => {
  let open: NatsBackend[] = [];
  let counter = 0;

  const backend = (): NatsBackend => {
    const b = new NatsBackend({ servers: NATS_URL, prefix: PREFIX });
    b.on('error', () => undefined);
    open.push(b);
    return b;
  };
  const route = (service: string, topics: string[], concurrency: number): SubscriptionSpec => ({
    service,
    queue: `${service}.route`,
    topics,
    external: false,
    concurrency,
  });
  const message = (topic: string, text: string): OutgoingMessage => ({
    topic,
    body: Buffer.from(JSON.stringify(text)),
    headers: {},
    messageId: `${topic}-${text}-${++counter}`,
    timestamp: Date.now(),
  });
  const body = (d: Delivery): string => JSON.parse(d.body.toString()) as string;

  beforeAll(() => Logger.overrideLogger(false));

  afterEach(async () => {
    const closing = open;
    open = [];
    await Promise.all(closing.map((b) => b.close()));
  });

  afterAll(async () => {
    expect(await deleteNatsObjects(PREFIX)).toHaveLength(3);
  }, 30_000);

  it("reads a foreign producer's unusual headers, and round-trips its own, over the server", async () => {
    const [a, producer] = [backend(), backend()];
    const spec = route('hd-headers', ['hd.headers'], 4);
    const got: Delivery[] = [];
    await a.subscribe(spec, async (d) => {
      got.push(d);
      return { action: 'ack' };
    });
    const long = 'v'.repeat(20_000);
    const { nc } = await natsAdmin();
    try {
      const { headers } = await import('@nats-io/transport-node');
      const h = headers();
      h.append('x-multi', 'first');
      h.append('x-multi', 'second');
      h.set('x-utf', 'héllo wörld ✓ 日本');
      h.set('x-colon', 'a: b:c');
      h.set('x-long', long);
      h.set('Content-Type', 'text/plain');
      const { jetstream } = await import('@nats-io/jetstream');
      await jetstream(nc).publish(`${PREFIX}.t.hd.headers`, 'foreign', { headers: h });
    } finally {
      await nc.close();
    }
    await producer.publish(
      {
        ...message('hd.headers', 'own'),
        headers: { 'x-utf': 'ünïcødé ✓', 'x-colon': 'k: v', 'x-long': long, 'x-ctl': 'a\u0085b' },
      },
      { mandatory: true },
    );
    await waitFor(() => got.length === 2);
    const [foreign, own] = got;
    expect(foreign.headers).toEqual({
      'x-multi': 'first',
      'x-utf': 'héllo wörld ✓ 日本',
      'x-colon': 'a: b:c',
      'x-long': long,
    });
    expect(foreign.contentType).toBe('text/plain');
    expect(own.headers).toMatchObject({
      'x-utf': 'ünïcødé ✓',
      'x-colon': 'k: v',
      'x-long': long,
      'x-ctl': 'a\u0085b',
    });
  });

  it('does not let an application header named Nats-Msg-Id decide deduplication', async () => {
    const [a, producer] = [backend(), backend()];
    const spec = route('hd-msgid', ['hd.msgid'], 4);
    const got: string[] = [];
    await a.subscribe(spec, async (d) => {
      got.push(body(d));
      return { action: 'ack' };
    });
    for (const text of ['one', 'two'])
      await producer.publish(
        { ...message('hd.msgid', text), headers: { 'Nats-Msg-Id': 'forwarded' } },
        { mandatory: true },
      );
    await producer.publish(message('hd.msgid', 'three'), { mandatory: true });
    await waitFor(() => got.includes('three'));
    expect(got.sort()).toEqual(['one', 'three', 'two']);
  });

  it("takes a delivery's attempt and topic from the library's own copies, never from a foreign sender's x-messaging-* headers", async () => {
    const a = backend();
    const spec = route('hd-attempt', ['hd.attempt'], 4);
    const seen: Array<{ attempt: number; topic: string; text: string }> = [];
    await a.subscribe(spec, async (d) => {
      seen.push({ attempt: d.attempt, topic: d.topic, text: body(d) });
      // As the retry policy does with maxAttempts 3: retried until the third attempt.
      if (d.attempt < 3)
        return {
          action: 'retry',
          delayMs: d.attempt === 1 ? 0 : 50,
          failure: {
            reason: 'handler-error',
            message: 'boom',
            errorClass: 'Error',
            at: new Date(),
          },
        };
      return { action: 'ack' };
    });
    const { nc } = await natsAdmin();
    try {
      const { headers } = await import('@nats-io/transport-node');
      const { jetstream } = await import('@nats-io/jetstream');
      const h = headers();
      h.set('x-messaging-attempt', '999');
      h.set('x-messaging-topic', 'spoofed.topic');
      h.set('x-nats-types', '{"x-messaging-attempt":"n"}');
      h.set('x-nats-message-id', 'foreign-1');
      await jetstream(nc).publish(`${PREFIX}.q.${spec.queue}`, JSON.stringify('foreign'), {
        headers: h,
      });
    } finally {
      await nc.close();
    }
    await waitFor(() => seen.length === 3, { message: 'three attempts of the foreign message' });
    expect(seen).toEqual(
      [1, 2, 3].map((attempt) => ({ attempt, topic: spec.queue, text: 'foreign' })),
    );
  });
});
