import { Logger } from '@nestjs/common';
import { createServer, type Server, Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
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

const PREFIX = natsRunPrefix('nats-rv');

/**
 * Review of the NATS performance rework (issue 19): each test states what the author's design
 * promises and fails where the code does not keep it.
 */
describe('NatsBackend review (issue 19)', () => {
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
    for (const open of holds.splice(0)) open();
    const closing = open;
    open = [];
    await Promise.all(closing.map((b) => b.close()));
  });

  afterAll(async () => {
    expect(await deleteNatsObjects(PREFIX)).toHaveLength(3);
  }, 30_000);

  it('answers a volatile request the server routed to a route just before its cancel() (not dropped by the client)', async () => {
    const server = backend();
    const seen: string[] = [];
    const subscription = await server.subscribe(
      route('rv-cancel', ['rv.cancel'], 4),
      async (d: Delivery): Promise<Settlement> => {
        seen.push(body(d));
        return { action: 'ack', reply: { body: d.body, headers: {} } };
      },
    );
    // The request goes out on the wire before the unsubscribe (one connection keeps order): the
    // server routes it to this route, then takes the unsubscribe. The responder's doc: "One that
    // arrives while the route stops was routed here before the server had the unsubscribe: it is
    // handled like the others."
    const asked = server.request(message('rv.cancel', 'in-flight'), {
      timeoutMs: 3_000,
      durable: false,
    });
    const settledAs = asked.then(
      (r) => `reply ${r.body.toString()}`,
      (e: Error) => `${e.constructor.name}: ${e.message}`,
    );
    await subscription.cancel();
    expect(await settledAs).toBe('reply "in-flight"');
    expect(seen).toEqual(['in-flight']);
  });

  it('loses no volatile request from another process racing cancel(): each is answered or refused at once', async () => {
    const [server, caller] = [backend(), backend()];
    const subscription = await server.subscribe(
      route('rv-race', ['rv.race'], 50),
      async (d: Delivery): Promise<Settlement> => ({
        action: 'ack',
        reply: { body: d.body, headers: {} },
      }),
    );
    const outcomes: Array<Promise<string>> = [];
    let stop = false;
    const pump = (async () => {
      while (!stop) {
        for (let i = 0; i < 20; i++)
          outcomes.push(
            caller.request(message('rv.race', `r${i}`), { timeoutMs: 3_000, durable: false }).then(
              () => 'answered',
              (e: Error) => e.constructor.name,
            ),
          );
        await new Promise((r) => setImmediate(r));
      }
    })();
    await waitFor(() => outcomes.length > 400);
    await subscription.cancel();
    stop = true;
    await pump;
    const counts: Record<string, number> = {};
    for (const o of await Promise.all(outcomes)) counts[o] = (counts[o] ?? 0) + 1;
    // Answered before the cancel, UnroutableError after it; a request that times out was lost.
    expect(counts.RequestTimeoutError ?? 0).toBe(0);
  }, 30_000);

  it('does not hold a message for a busy instance while another instance of the route has a free slot', async () => {
    const [a, b, producer] = [backend(), backend(), backend()];
    const spec = route('rv-hold', ['rv.hold'], 1);
    const seenA: string[] = [];
    const seenB: string[] = [];
    await a.subscribe(spec, holding(seenA));
    await producer.publish(message('rv.hold', 'first'), { mandatory: true });
    await waitFor(() => seenA.length === 1);
    // A runs its one slot. B, idle, subscribes; a message sent to the route's queue (a retry
    // copy, a replay, a direct send) should go to B.
    await b.subscribe(spec, holding(seenB));
    const toQueue: OutgoingMessage = {
      ...message('rv.hold', 'second'),
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
    const spec = route('rv-filters', ['rv.f1', 'rv.f2'], 1);
    const seen: string[] = [];
    await a.subscribe(spec, holding(seen));
    await producer.publish(message('rv.f1', 'one'), { mandatory: true });
    await producer.publish(message('rv.f2', 'two'), { mandatory: true });
    await producer.publish(
      { ...message('rv.f1', 'three'), topic: undefined, queue: spec.queue },
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

  it('after a reconnection, holds no more deliveries than its concurrency (old pulls still alive)', async () => {
    const proxy = await tcpProxy(4222);
    try {
      const a = backend({ servers: `nats://127.0.0.1:${proxy.port}` });
      const producer = backend();
      const spec = route('rv-reconnect', ['rv.reconnect'], 2);
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
        // The renewed pull is in (one pull before the cut, one after: a second waiting request).
        await waitFor(
          async () => (await jsm.consumers.info(names.messages, consumer)).num_waiting >= 1,
        );
        for (let i = 0; i < 4; i++)
          await producer.publish(message('rv.reconnect', `m${i}`), { mandatory: true });
        await waitFor(() => seen.length === 2);
        await waitFor(
          async () => (await jsm.consumers.info(names.messages, consumer)).num_pending === 0,
        );
        const info = await jsm.consumers.info(names.messages, consumer);
        // Concurrency 2, both slots busy: the server should have handed out 2, the other 2 wait
        // in the stream for any instance.
        expect({ ackPending: info.num_ack_pending, waiting: info.num_waiting }).toEqual({
          ackPending: 2,
          waiting: expect.any(Number),
        });
      } finally {
        await nc.close();
      }
    } finally {
      proxy.close();
    }
  }, 40_000);

  it('after a reconnection and the expiry of the old pulls, still asks for no more than its room', async () => {
    const proxy = await tcpProxy(4222);
    try {
      const a = backend({ servers: `nats://127.0.0.1:${proxy.port}` });
      const spec = route('rv-phantom', ['rv.phantom'], 2);
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
        await waitFor(async () => (await waitingPulls()) === 2);
        // The pull made before the cut expires (30 s) and is answered 408: the puller subtracts
        // what it did not deliver from `asked`, which the renewal had already reset, and asks again.
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

  it("reads a foreign producer's unusual headers, and round-trips its own, over the server", async () => {
    const [a, producer] = [backend(), backend()];
    const spec = route('rv-headers', ['rv.headers'], 4);
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
      await jetstream(nc).publish(`${PREFIX}.t.rv.headers`, 'foreign', { headers: h });
    } finally {
      await nc.close();
    }
    await producer.publish(
      {
        ...message('rv.headers', 'own'),
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

  it('stores each publish once across a dropped connection (PubAcks matched, resends deduplicated)', async () => {
    const proxy = await tcpProxy(4222);
    try {
      const producer = backend({
        servers: `nats://127.0.0.1:${proxy.port}`,
        publishTimeoutMs: 20_000,
      });
      const consumerSide = backend();
      const spec = route('rv-pubacks', ['rv.pubacks'], 50);
      const got: string[] = [];
      await consumerSide.subscribe(spec, async (d) => {
        got.push(d.messageId);
        return { action: 'ack' };
      });
      const ids: string[] = [];
      const published: Array<Promise<void>> = [];
      for (let i = 0; i < 600; i++) {
        const m = message('rv.pubacks', `p${i}`);
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

  it('does not let an application header named Nats-Msg-Id decide deduplication', async () => {
    const [a, producer] = [backend(), backend()];
    const spec = route('rv-msgid', ['rv.msgid'], 4);
    const got: string[] = [];
    await a.subscribe(spec, async (d) => {
      got.push(body(d));
      return { action: 'ack' };
    });
    for (const text of ['one', 'two'])
      await producer.publish(
        { ...message('rv.msgid', text), headers: { 'Nats-Msg-Id': 'forwarded' } },
        { mandatory: true },
      );
    await producer.publish(message('rv.msgid', 'three'), { mandatory: true });
    await waitFor(() => got.includes('three'));
    expect(got.sort()).toEqual(['one', 'three', 'two']);
  });

  it('keeps one waiting pull per consumer across several reconnections', async () => {
    const proxy = await tcpProxy(4222);
    try {
      const a = backend({ servers: `nats://127.0.0.1:${proxy.port}` });
      const spec = route('rv-cuts', ['rv.cuts'], 2);
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
      const spec = route('rv-zombie', ['rv.zombie'], 2);
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
      await producer.publish(message('rv.zombie', 'after'), { mandatory: true });
      // Give a consumer left running the time to get it (it would, within a round trip).
      await waitFor(() => seen.length > 0, { timeoutMs: 3_000 }).catch(() => undefined);
      expect(seen).toEqual([]);
    } finally {
      proxy.close();
    }
  }, 30_000);
});

/** A TCP proxy to the local NATS server whose connections the test can cut. */
async function tcpProxy(upstreamPort: number): Promise<{
  port: number;
  cut: () => void;
  close: () => void;
  holdAfter: (text: string) => void;
}> {
  const sockets = new Set<Socket>();
  let trigger: string | undefined;
  const server: Server = createServer((client) => {
    const upstream = new Socket();
    upstream.connect(upstreamPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    let held = false;
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      if (trigger && !held && chunk.toString('latin1').includes(trigger)) {
        held = true;
        trigger = undefined;
        setTimeout(() => {
          client.destroy();
          upstream.destroy();
        }, 50);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!held) client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
    holdAfter: (text: string) => {
      trigger = text;
    },
  };
}
