import { Logger } from '@nestjs/common';
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
import { tcpProxy } from './nats-proxy.fixture';
import { natsNames, routeFilters } from './nats-topology';

const PREFIX = natsRunPrefix('nats-rc');

/**
 * Across dropped connections (through a TCP proxy the tests cut): a route holds no more than its
 * concurrency and keeps one pull per consumer however often it reconnects, a subscribe() that
 * failed consumes nothing, and publishes are stored once.
 */
describe('NatsBackend across dropped connections', () => {
  let open: NatsBackend[] = [];
  let counter = 0;
  const holds: Array<() => void> = [];

  const backend = (options: NatsBackendOptions = {}): NatsBackend => {
    const b = new NatsBackend({ servers: NATS_URL, prefix: PREFIX, ...options });
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

  it('holds no more deliveries than its concurrency after a reconnection, whether its pulls of before survived or not', async () => {
    const proxy = await tcpProxy(4222);
    try {
      const a = backend({ servers: `nats://127.0.0.1:${proxy.port}` });
      const producer = backend();
      const spec = route('rc-reconnect', ['rc.reconnect'], 2);
      const seen: string[] = [];
      const statuses: string[] = [];
      a.on('status', (s) => statuses.push(s));
      await a.subscribe(spec, holding(seen));
      proxy.cut();
      await waitFor(() => statuses.includes('reconnecting') || statuses.includes('disconnected'));
      await waitFor(() => statuses.lastIndexOf('connected') > statuses.indexOf('reconnecting'));
      const names = natsNames(PREFIX);
      const consumer = routeFilters(names, spec.queue, spec.topics)[0].name;
      const { nc, jsm } = await natsAdmin();
      try {
        // The renewed pull is in.
        await waitFor(
          async () => (await jsm.consumers.info(names.messages, consumer)).num_waiting >= 1,
        );
        for (let i = 0; i < 4; i++)
          await producer.publish(message('rc.reconnect', `m${i}`), { mandatory: true });
        await waitFor(() => seen.length === 2);
        // Until the server handed out all four (over-delivery) or 3 s passed (it holds them back).
        await waitFor(
          async () => (await jsm.consumers.info(names.messages, consumer)).num_pending === 0,
          { timeoutMs: 3_000 },
        ).catch(() => undefined);
        const info = await jsm.consumers.info(names.messages, consumer);
        // Concurrency 2, both slots busy: the server should have handed out 2, the other 2 wait
        // in the stream for any instance.
        expect({
          ackPending: info.num_ack_pending,
          pending: info.num_pending,
          waiting: info.num_waiting,
        }).toEqual({
          ackPending: 2,
          pending: 2,
          waiting: expect.any(Number),
        });
      } finally {
        await nc.close();
      }
    } finally {
      proxy.close();
    }
  }, 40_000);

  it('asks for no more than its room after a reconnection, once the pulls of before would have expired', async () => {
    const proxy = await tcpProxy(4222);
    try {
      const a = backend({ servers: `nats://127.0.0.1:${proxy.port}` });
      const spec = route('rc-phantom', ['rc.phantom'], 2);
      const seen: string[] = [];
      const statuses: string[] = [];
      a.on('status', (s) => statuses.push(s));
      await a.subscribe(spec, holding(seen));
      proxy.cut();
      await waitFor(() => statuses.includes('reconnecting') || statuses.includes('disconnected'));
      await waitFor(() => statuses.lastIndexOf('connected') > statuses.indexOf('reconnecting'));
      const names = natsNames(PREFIX);
      const consumer = routeFilters(names, spec.queue, spec.topics)[0].name;
      const { nc, jsm } = await natsAdmin();
      try {
        const waitingPulls = async () =>
          (await jsm.consumers.info(names.messages, consumer)).num_waiting;
        await waitFor(async () => (await waitingPulls()) >= 1);
        // Had the pull made before the cut survived on the same inbox, it would expire (30 s) and
        // be answered 408: its undelivered part subtracted from a count the renewal had reset, the
        // puller would ask again, a pull too many for good.
        const before = Date.now();
        await waitFor(async () => Date.now() - before > 33_000 && (await waitingPulls()) > 0, {
          timeoutMs: 40_000,
          intervalMs: 500,
        });
        expect(await waitingPulls()).toBe(1);
      } finally {
        await nc.close();
      }
    } finally {
      proxy.close();
    }
  }, 60_000);

  it('keeps one waiting pull per consumer across several reconnections', async () => {
    const proxy = await tcpProxy(4222);
    try {
      const a = backend({ servers: `nats://127.0.0.1:${proxy.port}` });
      const spec = route('rc-cuts', ['rc.cuts'], 2);
      let reconnects = 0;
      a.on('status', (s) => {
        if (s === 'connected') reconnects++;
      });
      await a.subscribe(spec, holding([]));
      const names = natsNames(PREFIX);
      const consumer = routeFilters(names, spec.queue, spec.topics)[0].name;
      const { nc, jsm } = await natsAdmin();
      try {
        const waitingPulls = async () =>
          (await jsm.consumers.info(names.messages, consumer)).num_waiting;
        for (let cut = 1; cut <= 3; cut++) {
          const before = reconnects;
          proxy.cut();
          await waitFor(() => reconnects > before);
          await waitFor(async () => (await waitingPulls()) >= cut, { timeoutMs: 3_000 }).catch(
            () => undefined,
          );
        }
        expect(await waitingPulls()).toBe(1);
      } finally {
        await nc.close();
      }
    } finally {
      proxy.close();
    }
  }, 40_000);

  it('consumes nothing for a subscribe() that rejected (the connection dropped during its flush)', async () => {
    const proxy = await tcpProxy(4222);
    try {
      const a = backend({ servers: `nats://127.0.0.1:${proxy.port}` });
      const producer = backend();
      await a.connect();
      const spec = route('rc-zombie', ['rc.zombie'], 2);
      const seen: string[] = [];
      // Once the client subscribes the route's request subject, the server's answers (the PONG of
      // subscribe()'s flush) are held back, then the connection is cut.
      proxy.holdAfter(`${PREFIX}.rq.`);
      const subscribed = a.subscribe(spec, async (d) => {
        seen.push(body(d));
        return { action: 'ack' };
      });
      await expect(subscribed).rejects.toThrow();
      await waitFor(() => a.status === 'connected');
      await producer.publish(message('rc.zombie', 'after'), { mandatory: true });
      // Give a consumer left running the time to get it (it would, within a round trip).
      await waitFor(() => seen.length > 0, { timeoutMs: 3_000 }).catch(() => undefined);
      expect(seen).toEqual([]);
    } finally {
      proxy.close();
    }
  }, 30_000);

  it('stores each publish once across a dropped connection (PubAcks matched, resends deduplicated)', async () => {
    const proxy = await tcpProxy(4222);
    try {
      const producer = backend({
        servers: `nats://127.0.0.1:${proxy.port}`,
        publishTimeoutMs: 20_000,
      });
      const consumerSide = backend();
      const spec = route('rc-pubacks', ['rc.pubacks'], 50);
      const got: string[] = [];
      await consumerSide.subscribe(spec, async (d) => {
        got.push(d.messageId);
        return { action: 'ack' };
      });
      const ids: string[] = [];
      const published: Array<Promise<void>> = [];
      for (let i = 0; i < 600; i++) {
        const m = message('rc.pubacks', `p${i}`);
        ids.push(m.messageId);
        published.push(producer.publish(m, { mandatory: true }));
        if (i === 300) proxy.cut();
        if (i % 50 === 0) await new Promise((r) => setImmediate(r));
      }
      const results = await Promise.allSettled(published);
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      await waitFor(() => got.length >= ids.length, { timeoutMs: 20_000 });
      // Give duplicates a moment to show up behind the last one.
      const { nc } = await natsAdmin();
      await nc.flush();
      await nc.close();
      expect([...got].sort()).toEqual([...ids].sort());
    } finally {
      proxy.close();
    }
  }, 60_000);

  it('notices a black-holed link within maxPingsOutstanding + 1 ping intervals, reconnects, and confirms a publish caught by it', async () => {
    const proxy = await tcpProxy(4222);
    try {
      const producer = backend({
        servers: `nats://127.0.0.1:${proxy.port}`,
        pingIntervalMs: 300,
        maxPingsOutstanding: 2,
      });
      const consumerSide = backend();
      const spec = route('rc-hole', ['rc.hole'], 4);
      const got: string[] = [];
      await consumerSide.subscribe(spec, async (d) => {
        got.push(body(d));
        return { action: 'ack' };
      });
      await producer.publish(message('rc.hole', 'before'), { mandatory: true });
      const statuses: Array<[string, number]> = [];
      producer.on('status', (s) => statuses.push([s, Date.now()]));
      proxy.blackhole();
      const holedAt = Date.now();
      const caught = producer.publish(message('rc.hole', 'caught'), { mandatory: true });
      await waitFor(() => statuses.some(([s]) => s === 'reconnecting'), {
        timeoutMs: 5_000,
        message: 'the producer noticed the dead link',
      });
      const noticedAfter = (statuses.find(([s]) => s === 'reconnecting')?.[1] ?? 0) - holedAt;
      // Two pings unanswered, noticed at the third interval (900 ms), plus a busy box's slack.
      expect(noticedAfter).toBeLessThan(2_500);
      await waitFor(() => statuses.some(([s]) => s === 'connected'));
      await caught;
      await waitFor(() => got.includes('caught'));
      expect(got.sort()).toEqual(['before', 'caught']);
    } finally {
      proxy.close();
    }
  }, 30_000);
});
