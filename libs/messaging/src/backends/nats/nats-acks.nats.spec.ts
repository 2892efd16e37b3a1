import { Logger } from '@nestjs/common';
import type { Msg } from '@nats-io/transport-node';
import type {
  Delivery,
  OutgoingMessage,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { deleteNatsObjects, NATS_URL, natsAdmin, natsRunPrefix } from '../../testing/nats.fixture';
import { gate, waitFor } from '../../testing/wait-for';
import { NatsBackend } from './index';
import type { NatsBackendOptions } from './nats-backend.options';
import { natsNames, queueConsumerName, routeFilters } from './nats-topology';

const PREFIX = natsRunPrefix('nats-ack');

/**
 * How deliveries are acknowledged and pulled: plain or confirmed acks, pulls that recover, and no
 * more than `concurrency` deliveries held per instance over all the consumers of a route.
 */
describe('NatsBackend acks and pulls', () => {
  let open: NatsBackend[] = [];
  let counter = 0;
  const holds: Array<() => void> = [];

  const backend = (options: NatsBackendOptions = {}): NatsBackend => {
    const b = new NatsBackend({ servers: NATS_URL, prefix: PREFIX, ...options });
    b.on('error', () => undefined);
    open.push(b);
    return b;
  };
  const route = (service: string, topics: string[], concurrency = 4): SubscriptionSpec => ({
    service,
    queue: `${service}.route`,
    topics,
    external: false,
    concurrency,
  });
  const publish = (b: NatsBackend, topic: string, id: string) =>
    b.publish(
      { topic, body: Buffer.from('{}'), headers: {}, messageId: id, timestamp: Date.now() },
      { mandatory: true },
    );
  const message = (topic: string, text: string): OutgoingMessage => ({
    topic,
    body: Buffer.from(JSON.stringify(text)),
    headers: {},
    messageId: `${topic}-${text}-${++counter}`,
    timestamp: Date.now(),
  });
  const body = (d: Delivery): string => JSON.parse(d.body.toString()) as string;
  /** A handler that records what it got and holds every delivery until the test ends. */
  const holding = (seen: string[]) => {
    const hold = gate();
    holds.push(hold.open);
    return async (d: Delivery): Promise<Settlement> => {
      seen.push(body(d));
      await hold.promise;
      return { action: 'ack' };
    };
  };

  beforeAll(() => Logger.overrideLogger(false));

  afterEach(async () => {
    for (const release of holds.splice(0)) release();
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
      // nats-server 2.9 may refuse a delete while it writes the consumer's files ("unlinkat ...:
      // directory not empty"): the test's own action, asked again until the server does it.
      await waitFor(
        () =>
          jsm.consumers.delete(`${PREFIX}-messages`, name).then(
            () => true,
            (error: Error) => {
              if (/directory not empty/.test(error.message)) return false;
              // A refused delete that removed the consumer after all.
              if (/consumer not found/.test(error.message)) return true;
              throw error;
            },
          ),
        { message: 'the consumer deleted under the route' },
      );
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

  it('leaves a message to an idle instance of the route, not held by a busy one', async () => {
    const [a, b, producer] = [backend(), backend(), backend()];
    const spec = route('ack-hold', ['ack.hold'], 1);
    const seenA: string[] = [];
    const seenB: string[] = [];
    await a.subscribe(spec, holding(seenA));
    await producer.publish(message('ack.hold', 'first'), { mandatory: true });
    await waitFor(() => seenA.length === 1);
    // A runs its one slot. B, idle, subscribes; a message sent to the route's queue (a retry
    // copy, a replay, a direct send) should go to B.
    await b.subscribe(spec, holding(seenB));
    const toQueue: OutgoingMessage = {
      ...message('ack.hold', 'second'),
      topic: undefined,
      queue: spec.queue,
    };
    await producer.publish(toQueue, { mandatory: true });
    // What the server handed out: A's queue consumer pulled for its one slot before it was busy.
    const { nc, jsm } = await natsAdmin();
    try {
      await waitFor(
        async () =>
          (await jsm.consumers.info(`${PREFIX}-messages`, queueConsumerName(spec.queue)))
            .num_ack_pending === 1,
      );
      await expect(
        waitFor(() => seenB.includes('second'), { timeoutMs: 5_000, message: 'B got "second"' }),
      ).resolves.toBeUndefined();
    } finally {
      await nc.close();
    }
    expect(seenA).toEqual(['first']);
  }, 30_000);

  it('pulls at most concurrency messages per instance over several filters and the queue', async () => {
    const [a, producer] = [backend(), backend()];
    const spec = route('ack-filters', ['ack.f1', 'ack.f2'], 1);
    const seen: string[] = [];
    await a.subscribe(spec, holding(seen));
    await producer.publish(message('ack.f1', 'one'), { mandatory: true });
    await producer.publish(message('ack.f2', 'two'), { mandatory: true });
    await producer.publish(
      { ...message('ack.f1', 'three'), topic: undefined, queue: spec.queue },
      {
        mandatory: true,
      },
    );
    await waitFor(() => seen.length === 1);
    const names = natsNames(PREFIX);
    const consumers = [
      ...routeFilters(names, spec.queue, spec.topics).map((f) => f.name),
      queueConsumerName(spec.queue),
    ];
    const { nc, jsm } = await natsAdmin();
    try {
      const sum = async (field: 'num_ack_pending' | 'num_pending') => {
        let total = 0;
        for (const c of consumers) total += (await jsm.consumers.info(names.messages, c))[field];
        return total;
      };
      // Until the server handed out all three (over-delivery) or 3 s passed (it holds them back).
      await waitFor(async () => (await sum('num_pending')) === 0, { timeoutMs: 3_000 }).catch(
        () => undefined,
      );
      // Concurrency 1 and the one slot busy: one delivery out, two left in the stream for any instance.
      expect({ handed: await sum('num_ack_pending'), handled: seen.length }).toEqual({
        handed: 1,
        handled: 1,
      });
    } finally {
      await nc.close();
    }
  });
});
