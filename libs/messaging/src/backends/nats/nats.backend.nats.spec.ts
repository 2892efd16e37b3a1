import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { Logger } from '@nestjs/common';
import type {
  BrokerBackend,
  Delivery,
  FailureInfo,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { BackendClosedError, MessagingConfigError } from '../../errors/messaging.errors';
import { deleteNatsObjects, NATS_URL, natsAdmin, natsRunPrefix } from '../../testing/nats.fixture';
import { gate, waitFor } from '../../testing/wait-for';
import { NatsConnectError } from './nats-connection';
import { NatsBackend } from './index';
import type { NatsBackendOptions } from './nats-backend.options';

const PREFIX = natsRunPrefix('nats-spec');
const ACK = { action: 'ack' } as const satisfies Settlement;

/** What the contract does not cover: wildcard forms, durability of delays and deliveries, errors. */
describe('NatsBackend on a NATS server', () => {
  let open: NatsBackend[] = [];
  let counter = 0;

  const backend = (options: NatsBackendOptions = {}): NatsBackend => {
    const b = new NatsBackend({ servers: NATS_URL, prefix: PREFIX, ...options });
    b.on('error', () => undefined);
    open.push(b);
    return b;
  };
  const route = (topics: string[], concurrency = 4): SubscriptionSpec => {
    const service = `svc${++counter}`;
    return { service, queue: `${service}.route`, topics, external: false, concurrency };
  };
  const publish = (b: BrokerBackend, topic: string, mandatory = false) =>
    b.publish(
      {
        topic,
        body: Buffer.from(JSON.stringify(topic)),
        headers: {},
        messageId: `${topic}-${Date.now()}`,
        timestamp: Date.now(),
      },
      { mandatory },
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

  it('routes every AMQP wildcard form, once per route, and rejects what no route takes', async () => {
    const b = backend();
    const routes: Record<string, string[]> = {
      'w.order.*': [],
      'w.order.#': [],
      'w.a.#.b': [],
      'w.#.end': [],
      'w.order.*|w.order.#': [],
    };
    for (const key of Object.keys(routes)) {
      await b.subscribe(route(key.split('|')), async (d: Delivery) => {
        routes[key].push(d.topic);
        return ACK;
      });
    }
    const topics = [
      'w.order',
      'w.order.created',
      'w.order.created.v2',
      'w.a.b',
      'w.a.x.b',
      'w.a.x.y.b',
      'w.a.x.c',
      'w.end',
      'w.x.y.end',
    ];
    for (const topic of topics) await publish(b, topic);
    const expected: Record<string, string[]> = {
      'w.order.*': ['w.order.created'],
      'w.order.#': ['w.order', 'w.order.created', 'w.order.created.v2'],
      'w.a.#.b': ['w.a.b', 'w.a.x.b', 'w.a.x.y.b'],
      'w.#.end': ['w.end', 'w.x.y.end'],
      'w.order.*|w.order.#': ['w.order', 'w.order.created', 'w.order.created.v2'],
    };
    await waitFor(() =>
      Object.keys(expected).every(
        (key) => JSON.stringify([...routes[key]].sort()) === JSON.stringify(expected[key]),
      ),
    );
    await expect(publish(b, 'w.a.x.c', true)).rejects.toThrow(/No queue is bound to 'w.a.x.c'/);
    await expect(publish(b, 'w.a.x.y.b', true)).resolves.toBeUndefined();
    // Everything was acked, the messages nobody handles too: interest retention removed them.
    const { nc, jsm } = await natsAdmin();
    try {
      await waitFor(
        async () => (await jsm.streams.info(`${PREFIX}-messages`)).state.messages === 0,
      );
    } finally {
      await nc.close();
    }
  });

  it('keeps a delayed retry when the backend that scheduled it closes; another instance delivers it', async () => {
    const spec = route(['delay.retry']);
    const first = backend();
    const seen: Delivery[] = [];
    await first.subscribe(spec, async (d) => {
      seen.push(d);
      return {
        action: 'retry',
        delayMs: 800,
        failure: { reason: 'handler-error', message: 'later', errorClass: 'Error', at: new Date() },
      };
    });
    await publish(first, 'delay.retry', true);
    await waitFor(() => seen.length === 1);
    const failedAt = Date.now();
    // close() waits for the settlement: the retry copy is stored before the original is acked.
    await first.close();
    const second = backend();
    const retried: Array<{ delivery: Delivery; at: number }> = [];
    await second.subscribe(spec, async (d) => {
      retried.push({ delivery: d, at: Date.now() });
      return ACK;
    });
    await waitFor(() => retried.length === 1);
    const [{ delivery, at }] = retried;
    expect(at - failedAt).toBeGreaterThanOrEqual(700);
    expect(delivery).toMatchObject({ attempt: 2, redelivered: false, topic: 'delay.retry' });
    expect(delivery.messageId).toBe(seen[0].messageId);
    expect(delivery.headers['x-messaging-last-error']).toBe('later');
  });

  it('sends a retry and a replay only to the failing route, never to the other services on the topic', async () => {
    const b = backend();
    const failing = route(['fan.out']);
    const other = route(['fan.out']);
    const failed: number[] = [];
    const fine: number[] = [];
    await b.subscribe(failing, async (d) => {
      failed.push(d.attempt);
      return {
        action: d.attempt < 2 ? 'retry' : 'dead-letter',
        delayMs: 50,
        failure: { reason: 'handler-error', message: 'no', errorClass: 'Error', at: new Date() },
      };
    });
    await b.subscribe(other, async (d) => {
      fine.push(d.attempt);
      return ACK;
    });
    await publish(b, 'fan.out', true);
    await waitFor(async () => (await b.deadLetters.list(failing.service)).length === 1);
    const [letter] = await b.deadLetters.list(failing.service);
    expect(await b.deadLetters.replay(failing.service, letter.id)).toBe(true);
    // The replayed message fails again: its retry and dead letter are new copies, not duplicates.
    await waitFor(async () => {
      const letters = await b.deadLetters.list(failing.service);
      return letters.length === 1 && letters[0].id !== letter.id;
    });
    expect(failed).toEqual([1, 2, 1, 2]);
    expect(fine).toEqual([1]);
  });

  it('stores the retry and the dead letter of every service that fails the same published message', async () => {
    const b = backend();
    const failure: FailureInfo = {
      reason: 'handler-error',
      message: 'no',
      errorClass: 'Error',
      at: new Date(),
    };
    const retried: string[] = [];
    const specs = [route(['same.retry']), route(['same.retry'])];
    for (const spec of specs) {
      await b.subscribe(spec, async (d) => {
        retried.push(`${spec.service}:${d.attempt}`);
        return d.attempt === 1 ? { action: 'retry', delayMs: 0, failure } : ACK;
      });
    }
    const dead = [route(['same.dead']), route(['same.dead'])];
    for (const spec of dead)
      await b.subscribe(spec, async () => ({ action: 'dead-letter', failure }));
    await publish(b, 'same.retry', true);
    await publish(b, 'same.dead', true);
    // Same stored message (same sequence) failed by two routes: neither copy is a duplicate.
    await waitFor(() => retried.length === 4);
    const expected = specs.flatMap((s) => [`${s.service}:1`, `${s.service}:2`]);
    expect(retried.sort()).toEqual(expected.sort());
    for (const spec of dead)
      await waitFor(async () => (await b.deadLetters.list(spec.service)).length === 1);
  });

  it('keeps redelivering a delivery past deliveryLimit until its dead letter is written', async () => {
    const { nc, jsm } = await natsAdmin();
    try {
      const spec = route(['limit.stuck'], 1);
      const b = backend({ ackWaitMs: 1_000, deliveryLimit: 1 });
      const refused: Error[] = [];
      b.on('error', (e) => /could not dead-letter/.test(e.message) && refused.push(e));
      const letters = `${PREFIX}-dead-letters`;
      let calls = 0;
      await b.subscribe(spec, async () => {
        calls++;
        // The dead letter this failure leads to cannot be written yet.
        const info = await jsm.streams.info(letters);
        await jsm.streams.update(letters, { ...info.config, max_msg_size: 1 });
        throw new Error('crash');
      });
      await publish(b, 'limit.stuck', true);
      await waitFor(() => calls === 1);
      // Delivery 2 (past the limit) fails to dead-letter and is naked: it must come again (3).
      await waitFor(() => refused.length >= 2, { timeoutMs: 8_000 });
      const info = await jsm.streams.info(letters);
      await jsm.streams.update(letters, { ...info.config, max_msg_size: -1 });
      await waitFor(async () => (await b.deadLetters.list(spec.service)).length === 1, {
        timeoutMs: 8_000,
      });
      expect(calls).toBe(1);
      expect(await b.deadLetters.purge(spec.service)).toBe(1);
      for await (const c of jsm.consumers.list(`${PREFIX}-messages`)) {
        if (c.config.description?.includes(`"${spec.queue}"`)) {
          expect(c.config.max_deliver).toBe(-1);
          expect(c.config.ack_wait).toBe(1_000 * 1_000_000);
        }
      }
      // A redeploy with another ackWaitMs updates the existing consumers.
      await b.close();
      const later = backend({ ackWaitMs: 2_000, deliveryLimit: 1 });
      await later.subscribe(spec, async () => ACK);
      let seen = 0;
      for await (const c of jsm.consumers.list(`${PREFIX}-messages`)) {
        if (!c.config.description?.includes(`"${spec.queue}"`)) continue;
        seen++;
        expect(c.config.ack_wait).toBe(2_000 * 1_000_000);
      }
      expect(seen).toBe(2);
    } finally {
      await nc.close();
    }
  });

  it('sets a duplicate window well above ackWaitMs, within max_age, on its streams', async () => {
    const b = backend({ ackWaitMs: 300_000 });
    await b.connect();
    const { nc, jsm } = await natsAdmin();
    try {
      const messages = await jsm.streams.info(`${PREFIX}-messages`);
      expect(messages.config.duplicate_window).toBe(20 * 60_000 * 1_000_000);
      const delayed = await jsm.streams.info(`${PREFIX}-delayed`);
      expect(delayed.config.duplicate_window).toBe(20 * 60_000 * 1_000_000);
    } finally {
      await nc.close();
    }
  });

  it('releases delayed messages again after its connection is replaced', async () => {
    const b = backend();
    const spec = route(['delay.relink'], 2);
    const got: string[] = [];
    await b.subscribe(spec, async (d) => {
      got.push(d.messageId ?? '');
      return ACK;
    });
    const send = (messageId: string) =>
      b.publish(
        {
          topic: 'delay.relink',
          body: Buffer.from('{}'),
          headers: {},
          messageId,
          timestamp: Date.now(),
          delayMs: 100,
        },
        { mandatory: true },
      );
    await send('before');
    await waitFor(() => got.includes('before'));
    // The client gives up its connection (as after auth errors on reconnect): a new one is opened.
    const link = (b as unknown as { connection: { current?: { nc: { close(): Promise<void> } } } })
      .connection.current;
    await link?.nc.close();
    await send('after');
    await waitFor(() => got.includes('after'), { timeoutMs: 8_000 });
  });

  it('rejects a subscribe that close() overtook, and leaves nothing running', async () => {
    const b = backend();
    const errors: Error[] = [];
    b.on('error', (e) => errors.push(e));
    await b.connect();
    const spec = route(['closed.meanwhile'], 1);
    const subscribing = b.subscribe(spec, async () => ACK);
    await new Promise((r) => setImmediate(r));
    await b.close();
    await expect(subscribing).rejects.toBeInstanceOf(BackendClosedError);
    expect(b.consumerStates()).toEqual([]);
    // Another instance of the route takes the next message; the closed one reported nothing meanwhile.
    const other = backend();
    const got: string[] = [];
    await other.subscribe(spec, async (d) => {
      got.push(d.messageId);
      return ACK;
    });
    await publish(other, 'closed.meanwhile');
    await waitFor(() => got.length === 1);
    expect(errors).toEqual([]);
  });

  it('redelivers the unsettled delivery of a dead instance to another one after ackWaitMs', async () => {
    const spec = route(['dead.instance'], 1);
    const hung = gate();
    const dead = backend({ ackWaitMs: 1_000, closeTimeoutMs: 0 });
    let started = 0;
    await dead.subscribe(spec, async () => {
      started++;
      await hung.promise;
      return ACK;
    });
    await publish(dead, 'dead.instance', true);
    await waitFor(() => started === 1);
    // Gone without settling: it stops keeping the delivery alive, and never acks it.
    await dead.close();
    const took: Array<{ delivery: Delivery; at: number }> = [];
    const goneAt = Date.now();
    const heir = backend({ ackWaitMs: 1_000 });
    await heir.subscribe(spec, async (d) => {
      took.push({ delivery: d, at: Date.now() });
      return ACK;
    });
    await waitFor(() => took.length === 1, { timeoutMs: 5_000 });
    expect(took[0].delivery).toMatchObject({ attempt: 1, redelivered: true });
    expect(took[0].at - goneAt).toBeLessThan(3_000);
    hung.open();
    expect(heir.consumerStates()).toEqual([{ queue: spec.queue, attached: true }]);
  });

  it('dead-letters a message redelivered past deliveryLimit without running its handler again', async () => {
    const spec = route(['crash.loop'], 1);
    const dead = backend({ ackWaitMs: 1_000, closeTimeoutMs: 0, deliveryLimit: 1 });
    const hung = gate();
    let started = 0;
    await dead.subscribe(spec, async () => {
      started++;
      await hung.promise;
      return ACK;
    });
    await publish(dead, 'crash.loop', true);
    await waitFor(() => started === 1);
    await dead.close();
    const heir = backend({ ackWaitMs: 1_000, deliveryLimit: 1 });
    let handled = 0;
    await heir.subscribe(spec, async () => {
      handled++;
      return ACK;
    });
    await waitFor(async () => (await heir.deadLetters.list(spec.service)).length === 1, {
      timeoutMs: 5_000,
    });
    hung.open();
    const [letter] = await heir.deadLetters.list(spec.service);
    expect(letter).toMatchObject({
      reason: 'delivery-limit',
      errorClass: 'DeliveryLimitExceeded',
      topic: 'crash.loop',
      queue: spec.queue,
      attempts: 1,
    });
    expect(handled).toBe(0);
    expect(await heir.deadLetters.purge(spec.service)).toBe(1);
  });

  it('consumes an external queue by name, from the library and from a plain NATS producer', async () => {
    const queue = `hello-${++counter}`;
    const b = backend();
    const got: Delivery[] = [];
    await b.subscribe(
      { service: `svc${counter}`, queue, topics: [], external: true, concurrency: 2 },
      async (d) => {
        got.push(d);
        return ACK;
      },
    );
    const send = (to: string, delayMs?: number) =>
      b.publish(
        {
          queue: to,
          body: Buffer.from('"hi"'),
          headers: { via: 'library' },
          contentType: 'application/json',
          messageId: `${to}-${Date.now()}`,
          timestamp: Date.now(),
          delayMs,
        },
        { mandatory: true },
      );
    await send(queue);
    await send(queue, 300);
    await expect(send(`${queue}-nobody`)).rejects.toThrow(/No queue is bound to 'queue hello-/);
    const { nc } = await natsAdmin();
    try {
      // What a producer in any language does: a plain publish to the queue's subject.
      nc.publish(`${PREFIX}.q.${queue}`, 'plain text');
      await nc.flush();
    } finally {
      await nc.close();
    }
    await waitFor(() => got.length === 3);
    const plain = got.find((d) => d.body.toString() === 'plain text');
    expect(plain).toMatchObject({ topic: queue, queue, attempt: 1, contentType: undefined });
    const fromLibrary = got.filter((d) => d.headers.via === 'library');
    expect(fromLibrary.map((d) => d.topic)).toEqual([queue, queue]);
  });

  it('reconnects after a cut connection: reports it, resumes consuming, confirms a publish made meanwhile', async () => {
    const proxy = await startProxy(new URL(NATS_URL));
    try {
      const spec = route(['cut.link'], 2);
      const cut = backend({ servers: `nats://127.0.0.1:${proxy.port}` });
      const statuses: string[] = [];
      cut.on('status', (s) => statuses.push(s));
      const got: string[] = [];
      await cut.subscribe(spec, async (d) => {
        got.push(JSON.parse(d.body.toString()) as string);
        return ACK;
      });
      const direct = backend();
      await publish(direct, 'cut.link', true);
      await waitFor(() => got.length === 1);

      proxy.cut();
      await waitFor(() => statuses.includes('reconnecting'));
      expect(cut.consumerStates()[0]).toMatchObject({ queue: spec.queue, attached: false });
      // Made while the link is down: waits for the reconnection, then confirms.
      await publish(cut, 'cut.link', true);
      await waitFor(() => cut.status === 'connected');
      await publish(direct, 'cut.link', true);
      await waitFor(() => got.length === 3, { timeoutMs: 8_000 });
      expect(statuses).toEqual(['connecting', 'connected', 'reconnecting', 'connected']);
      await waitFor(() => cut.consumerStates()[0].attached);
      await cut.close();
    } finally {
      await proxy.close();
    }
  });

  it('reports its status and rejects a bad option or an unreachable server with what to fix', async () => {
    expect(() => new NatsBackend({ servers: 'http://x y' })).toThrow(MessagingConfigError);
    expect(() => new NatsBackend({ prefix: 'has.dots' })).toThrow(/namespace must be letters/);
    const statuses: string[] = [];
    const unreachable = new NatsBackend({ servers: 'nats://127.0.0.1:1', connectTimeoutMs: 600 });
    unreachable.on('status', (s) => statuses.push(s));
    const startedAt = Date.now();
    const failure = unreachable.connect();
    await expect(failure).rejects.toBeInstanceOf(NatsConnectError);
    await expect(failure).rejects.toThrow(/nats:\/\/127.0.0.1:1 within 600 ms.*nats-server -js/s);
    expect(Date.now() - startedAt).toBeLessThan(3_000);
    expect(statuses).toEqual(['connecting', 'disconnected']);
    await unreachable.close();
    const secret = new NatsBackend({
      servers: 'nats://alice:s3cr3t@127.0.0.1:1',
      connectTimeoutMs: 300,
    });
    const refused = secret.connect();
    // The credentials are taken out of the URL: the error names the server without them.
    await expect(refused).rejects.toThrow(
      /could not connect to nats:\/\/127.0.0.1:1 within 300 ms/,
    );
    const error = await refused.catch((e: Error) => e);
    expect(`${String(error)} ${String((error as Error).cause)}`).not.toContain('s3cr3t');
    await secret.close();

    const ok = backend();
    const seen: string[] = [];
    ok.on('status', (s) => seen.push(s));
    await ok.connect();
    await ok.close();
    expect(seen).toEqual(['connecting', 'connected', 'closed']);
  });
});

/** A TCP proxy to the NATS server whose connections a test can cut (the server stays up). */
async function startProxy(
  target: URL,
): Promise<{ port: number; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port || 4222), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const cut = (): void => {
    for (const s of sockets) s.destroy();
  };
  return {
    port,
    cut,
    close: () => {
      cut();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
