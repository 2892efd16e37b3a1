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
});
