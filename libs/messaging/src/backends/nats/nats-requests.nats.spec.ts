import { Logger } from '@nestjs/common';
import type {
  BackendSubscription,
  Delivery,
  IncomingReply,
  OutgoingMessage,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import {
  PublishBackpressureError,
  RequestTimeoutError,
  UnroutableError,
} from '../../errors/messaging.errors';
import { deleteNatsObjects, NATS_URL, natsAdmin, natsRunPrefix } from '../../testing/nats.fixture';
import { gate, waitFor } from '../../testing/wait-for';
import { NatsBackend } from './index';
import type { NatsBackendOptions } from './nats-backend.options';

const PREFIX = natsRunPrefix('nats-rq');

/** Volatile requests over core NATS: who gets them, when they are refused, what bounds them. */
describe('NatsBackend volatile requests', () => {
  let open: NatsBackend[] = [];
  let counter = 0;

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
  const message = (topic: string, text: string): OutgoingMessage => ({
    topic,
    body: Buffer.from(JSON.stringify(text)),
    headers: {},
    messageId: `${topic}-${text}-${++counter}`,
    timestamp: Date.now(),
  });
  const ask = (b: NatsBackend, topic: string, text: string, timeoutMs = 10_000) =>
    b.request(message(topic, text), { timeoutMs, durable: false });
  const text = (reply: IncomingReply): string => JSON.parse(reply.body.toString()) as string;
  /** A handler that answers `<label>:<request>` and records what it got. */
  const answering =
    (label: string, seen: string[]) =>
    async (d: Delivery): Promise<Settlement> => {
      const got = JSON.parse(d.body.toString()) as string;
      seen.push(got);
      return {
        action: 'ack',
        reply: { body: Buffer.from(JSON.stringify(`${label}:${got}`)), headers: {} },
      };
    };

  beforeAll(() => Logger.overrideLogger(false));

  afterEach(async () => {
    const closing = open;
    open = [];
    await Promise.all(closing.map((b) => b.close()));
  });

  afterAll(async () => {
    expect(await deleteNatsObjects(PREFIX)).toHaveLength(3);
  }, 30_000);

  it('gives each request to one instance of each service, shared between competing instances', async () => {
    const [a1, a2, b1, caller] = [backend(), backend(), backend(), backend()];
    const seen: Record<string, string[]> = { a1: [], a2: [], b1: [] };
    await a1.subscribe(route('share-a', ['share.work']), answering('a', seen.a1));
    await a2.subscribe(route('share-a', ['share.work']), answering('a', seen.a2));
    await b1.subscribe(route('share-b', ['share.work']), answering('b', seen.b1));
    const ids = Array.from({ length: 40 }, (_, i) => `r${i}`);
    const replies = await Promise.all(ids.map((id) => ask(caller, 'share.work', id)));
    // The first reply wins: one of the two services answered each request.
    for (const [i, reply] of replies.entries())
      expect(text(reply)).toMatch(new RegExp(`^[ab]:${ids[i]}$`));
    // Service b got every request once; service a every request once, split between its instances.
    await waitFor(
      () => seen.b1.length === ids.length && seen.a1.length + seen.a2.length === ids.length,
    );
    expect([...seen.b1].sort()).toEqual([...ids].sort());
    expect([...seen.a1, ...seen.a2].sort()).toEqual([...ids].sort());
    expect(seen.a1.length).toBeGreaterThan(0);
    expect(seen.a2.length).toBeGreaterThan(0);
  });

  it('refuses at once a request to a route whose only instance closed or cancelled', async () => {
    const [server, caller] = [backend(), backend()];
    const subscription = await server.subscribe(route('gone', ['gone.work']), answering('s', []));
    await expect(ask(caller, 'gone.work', 'first').then(text)).resolves.toBe('s:first');
    await subscription.cancel();
    let startedAt = Date.now();
    await expect(ask(caller, 'gone.work', 'cancelled', 30_000)).rejects.toBeInstanceOf(
      UnroutableError,
    );
    expect(Date.now() - startedAt).toBeLessThan(1_000);

    const other = backend();
    await other.subscribe(route('gone', ['gone.work']), answering('o', []));
    await expect(ask(caller, 'gone.work', 'again').then(text)).resolves.toBe('o:again');
    await other.close();
    startedAt = Date.now();
    await expect(ask(caller, 'gone.work', 'closed', 30_000)).rejects.toThrow(
      /No queue is bound to 'gone.work'/,
    );
    expect(Date.now() - startedAt).toBeLessThan(1_000);
  });

  it('answers a volatile request the server routed to the route just before its cancel()', async () => {
    const server = backend();
    const seen: string[] = [];
    const subscription = await server.subscribe(
      route('rq-cancel', ['rq.cancel']),
      async (d: Delivery): Promise<Settlement> => {
        seen.push(JSON.parse(d.body.toString()) as string);
        return { action: 'ack', reply: { body: d.body, headers: {} } };
      },
    );
    // The request goes out on the wire before the unsubscribe (one connection keeps order): the
    // server routes it to this route, then takes the unsubscribe. The request reaches the client
    // after it unsubscribed: it must still be handled (a subscription drained, not dropped).
    const asked = server.request(message('rq.cancel', 'in-flight'), {
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
      route('rq-race', ['rq.race'], 50),
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
            caller.request(message('rq.race', `r${i}`), { timeoutMs: 3_000, durable: false }).then(
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

  it('holds at most concurrency + maxWaitingRequests requests of a route, refusing the rest at once', async () => {
    const server = backend({ maxWaitingRequests: 2 });
    const caller = backend();
    const hold = gate();
    const started: string[] = [];
    await server.subscribe(route('bounded', ['bounded.work'], 1), async (d) => {
      started.push(JSON.parse(d.body.toString()) as string);
      await hold.promise;
      return { action: 'ack', reply: { body: d.body, headers: {} } };
    });
    const first = ask(caller, 'bounded.work', 'running');
    await waitFor(() => started.length === 1);
    // One runs, two wait: the fourth and fifth are refused without waiting for their timeout.
    const waiting = [ask(caller, 'bounded.work', 'w1'), ask(caller, 'bounded.work', 'w2')];
    const startedAt = Date.now();
    const refused = [
      ask(caller, 'bounded.work', 'x1', 30_000),
      ask(caller, 'bounded.work', 'x2', 30_000),
    ];
    for (const r of refused) await expect(r).rejects.toBeInstanceOf(PublishBackpressureError);
    await expect(refused[0]).rejects.toThrow(/maxWaitingRequests/);
    expect(Date.now() - startedAt).toBeLessThan(1_000);
    expect(started).toEqual(['running']);
    hold.open();
    expect((await Promise.all([first, ...waiting])).map(text)).toEqual(['running', 'w1', 'w2']);
    expect(started).toEqual(['running', 'w1', 'w2']);
  });

  it('waits for another service when one refuses a request as busy, and refuses it at once when all do', async () => {
    // Refusals as the server carries them, to answer from B only once A's refusal came.
    const { nc } = await natsAdmin();
    const refusalSeen = gate();
    nc.subscribe('_INBOX.>', {
      callback: (_, msg) => {
        if (msg.headers?.get('x-nats-refusal') === 'busy') refusalSeen.open();
      },
    });
    await nc.flush();
    try {
      const [a, b, caller] = [
        backend({ maxWaitingRequests: 0 }),
        backend({ maxWaitingRequests: 0 }),
        backend(),
      ];
      const hold = gate();
      const seenB: string[] = [];
      // A holds whatever it gets: busy after the first request, it refuses the others.
      await a.subscribe(route('rq-busy-a', ['rq.busy'], 1), async () => {
        await hold.promise;
        return { action: 'ack' };
      });
      await b.subscribe(route('rq-busy-b', ['rq.busy'], 1), async (d) => {
        const got = JSON.parse(d.body.toString()) as string;
        seenB.push(got);
        if (got === 'second') await refusalSeen.promise;
        if (got === 'held') await hold.promise;
        return {
          action: 'ack',
          reply: { body: Buffer.from(JSON.stringify(`b:${got}`)), headers: {} },
        };
      });
      await expect(ask(caller, 'rq.busy', 'first').then(text)).resolves.toBe('b:first');
      // A refuses it (busy); B answers after that refusal reached the caller.
      await expect(ask(caller, 'rq.busy', 'second').then(text)).resolves.toBe('b:second');
      // Both busy: refused at once.
      const held = ask(caller, 'rq.busy', 'held', 30_000).catch(() => undefined);
      await waitFor(() => seenB.includes('held'));
      const startedAt = Date.now();
      await expect(ask(caller, 'rq.busy', 'last', 30_000)).rejects.toBeInstanceOf(
        PublishBackpressureError,
      );
      expect(Date.now() - startedAt).toBeLessThan(1_000);
      hold.open();
      await held;
    } finally {
      await nc.close();
    }
  });

  it('still answers the requests waiting for a slot when the subscription is cancelled', async () => {
    const [server, caller] = [backend(), backend()];
    const hold = gate();
    const started: string[] = [];
    const subscription: BackendSubscription = await server.subscribe(
      route('cancel', ['cancel.work'], 1),
      async (d) => {
        started.push(JSON.parse(d.body.toString()) as string);
        await hold.promise;
        return { action: 'ack', reply: { body: d.body, headers: {} } };
      },
    );
    await server.subscribe(route('cancel-probe', ['cancel.probe']), answering('p', []));
    const asked = [ask(caller, 'cancel.work', 'c1')];
    await waitFor(() => started.length === 1);
    asked.push(ask(caller, 'cancel.work', 'c2'), ask(caller, 'cancel.work', 'c3'));
    // NATS keeps one connection's messages in order: once the probe is answered, c2 and c3 wait.
    await expect(ask(caller, 'cancel.probe', 'probe').then(text)).resolves.toBe('p:probe');
    expect(started).toEqual(['c1']);
    await subscription.cancel();
    hold.open();
    expect((await Promise.all(asked)).map(text).sort()).toEqual(['c1', 'c2', 'c3']);
  });

  it('declines what a wide filter catches and its patterns do not match: unroutable unless a route matches', async () => {
    const [server, caller] = [backend(), backend()];
    await server.subscribe(route('wide', ['wide.#.end']), answering('w', []));
    await expect(ask(caller, 'wide.x.y.end', 'match').then(text)).resolves.toBe('w:match');
    const startedAt = Date.now();
    // `wide.>` receives it (NATS cannot say `wide.#.end`), the route declines it, nobody matches it.
    await expect(ask(caller, 'wide.x.other', 'no', 30_000)).rejects.toBeInstanceOf(UnroutableError);
    expect(Date.now() - startedAt).toBeLessThan(2_000);
    // Another service matches it exactly: the decline is not the answer, its reply is.
    const exact = backend();
    await exact.subscribe(route('wide-exact', ['wide.x.other']), answering('e', []));
    await expect(ask(caller, 'wide.x.other', 'yes').then(text)).resolves.toBe('e:yes');
  });

  it('carries its message id, correlation id (its message id unless set), headers and types', async () => {
    const [server, caller] = [backend(), backend()];
    const got: Delivery[] = [];
    await server.subscribe(route('props', ['props.work']), async (d) => {
      got.push(d);
      return { action: 'ack', reply: { body: d.body, headers: { n: 1 }, contentType: 'text/x' } };
    });
    const plain = { ...message('props.work', 'a'), contentType: 'application/json' };
    const reply = await caller.request(
      { ...plain, headers: { 'x-messaging-deadline': 42, tenant: 'acme' } },
      { timeoutMs: 10_000, durable: false },
    );
    expect(reply).toMatchObject({ headers: { n: 1 }, contentType: 'text/x' });
    await caller.request(
      { ...message('props.work', 'b'), correlationId: 'corr-b' },
      { timeoutMs: 10_000, durable: false },
    );
    expect(got.map((d) => [d.messageId, d.correlationId])).toEqual([
      [plain.messageId, plain.messageId],
      [expect.stringMatching(/^props.work-b-/), 'corr-b'],
    ]);
    expect(got[0]).toMatchObject({
      topic: 'props.work',
      queue: 'props.route',
      headers: { 'x-messaging-deadline': 42, tenant: 'acme' },
      contentType: 'application/json',
      timestamp: plain.timestamp,
      attempt: 1,
      redelivered: false,
      replyTo: expect.stringMatching(/^_INBOX\./),
    });
  });

  it('sends requests to a named queue and durable ones through the stream', async () => {
    const [server, caller] = [backend(), backend()];
    await server.subscribe(route('durable', ['durable.work']), answering('d', []));
    await expect(
      caller
        .request(message('durable.work', 'stored'), { timeoutMs: 10_000, durable: true })
        .then(text),
    ).resolves.toBe('d:stored');
    const byQueue = {
      ...message('durable.work', 'queue'),
      topic: undefined,
      queue: 'durable.route',
    };
    await expect(
      caller.request(byQueue, { timeoutMs: 10_000, durable: false }).then(text),
    ).resolves.toBe('d:queue');
    // A volatile request times out like any other when its handler does not answer in time.
    const slow = backend();
    const hold = gate();
    await slow.subscribe(route('slow', ['slow.work']), async () => {
      await hold.promise;
      return { action: 'ack' };
    });
    await expect(ask(caller, 'slow.work', 'late', 200)).rejects.toBeInstanceOf(RequestTimeoutError);
    hold.open();
  });
});
