import { Logger } from '@nestjs/common';
import type { Msg } from '@nats-io/transport-node';
import type { Delivery, SubscriptionSpec } from '../../backend/broker-backend.interface';
import { deleteNatsObjects, NATS_URL, natsAdmin, natsRunPrefix } from '../../testing/nats.fixture';
import { waitFor } from '../../testing/wait-for';
import { NatsBackend } from './index';
import type { NatsBackendOptions } from './nats-backend.options';
import { routeFilters, natsNames } from './nats-topology';

const PREFIX = natsRunPrefix('nats-ack');

/** How deliveries are acknowledged and pulled: plain or confirmed acks, pulls that recover. */
describe('NatsBackend acks and pulls', () => {
  let open: NatsBackend[] = [];

  const backend = (options: NatsBackendOptions = {}): NatsBackend => {
    const b = new NatsBackend({ servers: NATS_URL, prefix: PREFIX, ...options });
    b.on('error', () => undefined);
    open.push(b);
    return b;
  };
  const route = (service: string, topics: string[]): SubscriptionSpec => ({
    service,
    queue: `${service}.route`,
    topics,
    external: false,
    concurrency: 4,
  });
  const publish = (b: NatsBackend, topic: string, id: string) =>
    b.publish(
      { topic, body: Buffer.from('{}'), headers: {}, messageId: id, timestamp: Date.now() },
      { mandatory: true },
    );

  beforeAll(() => Logger.overrideLogger(false));

  afterEach(async () => {
    const closing = open;
    open = [];
    await Promise.all(closing.map((b) => b.close()));
  });

  afterAll(async () => {
    expect(await deleteNatsObjects(PREFIX)).toHaveLength(3);
  }, 30_000);

  it('acks plainly by default, and waits for the server to confirm each ack with confirmAcks', async () => {
    const names = natsNames(PREFIX);
    const plain = route('ack-plain', ['ack.work']);
    const confirmed = route('ack-confirmed', ['ack.work']);
    const consumerOf = (spec: SubscriptionSpec) =>
      routeFilters(names, spec.queue, spec.topics)[0].name;
    // The acks as the server sees them: a confirmed one asks for an answer (it has a reply subject).
    const { nc } = await natsAdmin();
    const acks: Msg[] = [];
    try {
      nc.subscribe(`$JS.ACK.${names.messages}.>`, {
        callback: (_, msg) => {
          acks.push(msg);
        },
      });
      await nc.flush();
      const got: string[] = [];
      const handler = async (d: Delivery) => {
        got.push(`${d.queue}:${d.messageId}`);
        return { action: 'ack' } as const;
      };
      await backend().subscribe(plain, handler);
      await backend({ confirmAcks: true }).subscribe(confirmed, handler);
      const producer = backend();
      for (const id of ['a1', 'a2', 'a3']) await publish(producer, 'ack.work', id);
      await waitFor(() => got.length === 6 && acks.length === 6);
      const acksOf = (spec: SubscriptionSpec) =>
        acks.filter((m) => m.subject.split('.').includes(consumerOf(spec)));
      expect(acksOf(plain)).toHaveLength(3);
      expect(acksOf(confirmed)).toHaveLength(3);
      for (const ack of acksOf(plain)) expect(ack.reply ?? '').toBe('');
      for (const ack of acksOf(confirmed)) expect(ack.reply).toMatch(/^_INBOX\./);
      for (const ack of acks) expect(new TextDecoder().decode(ack.data)).toBe('+ACK');
    } finally {
      await nc.close();
    }
  });

  it('declares its consumer again and goes on pulling when it is deleted under it', async () => {
    const b = backend();
    const spec = route('ack-deleted', ['ack.deleted']);
    const got: string[] = [];
    await b.subscribe(spec, async (d) => {
      got.push(d.messageId);
      return { action: 'ack' };
    });
    await publish(b, 'ack.deleted', 'before');
    await waitFor(() => got.includes('before'));
    const { nc, jsm } = await natsAdmin();
    try {
      const name = routeFilters(natsNames(PREFIX), spec.queue, spec.topics)[0].name;
      await jsm.consumers.delete(`${PREFIX}-messages`, name);
      // The waiting pull is told (409 consumer deleted): the consumer comes back, and pulls.
      await waitFor(
        async () =>
          (await jsm.consumers.info(`${PREFIX}-messages`, name).catch(() => null)) !== null,
        { timeoutMs: 8_000, message: 'consumer declared again' },
      );
      await waitFor(() => b.consumerStates()[0].attached, { timeoutMs: 8_000 });
      await publish(b, 'ack.deleted', 'after');
      await waitFor(() => got.includes('after'), { timeoutMs: 8_000 });
    } finally {
      await nc.close();
    }
  });
});
