import type { ConsumeMessage } from 'amqplib';
import type { BackendStatus } from '../../backend/broker-backend.interface';
import { BackendClosedError, MessagingConfigError } from '../../errors/messaging.errors';
import { gate, waitFor } from '../../testing/wait-for';
import { AmqpBackend } from './index';
import {
  BROKER_URL as URL,
  closeConnectionsNamed,
  connectionPidsNamed,
  runCommand as run,
  useAmqpFixture,
} from '../../testing/amqp-test.fixture';

describe('AmqpBackend (RabbitMQ): foreign queues, reconnection, cancel and close', () => {
  const {
    make,
    rawConnection,
    message,
    spec,
    collect,
    queueDepth,
    consumerCount,
    svc,
    topicPrefix,
    errors,
    run: RUN,
  } = useAmqpFixture();

  it('consumes over a connection of its own by default, over the one connection when shared', async () => {
    const connectionsNamed = async (name: string) => (await connectionPidsNamed(name)).length;
    const own = `own-${RUN}`;
    const shared = `shared-${RUN}`;
    const a = await make({ connectionName: own });
    const b = await make({ connectionName: shared, sharedConnection: true });
    // Publishing only: one connection each until they subscribe.
    await waitFor(async () => (await connectionsNamed(own)) === 1);
    const [gotA, gotB] = [collect(), collect()];
    await a.subscribe(spec(svc('own'), 'q', [`${topicPrefix}.own`]), gotA.handler);
    await b.subscribe(spec(svc('shared'), 'q', [`${topicPrefix}.shared`]), gotB.handler);
    await waitFor(async () => (await connectionsNamed(own)) === 2);
    expect(await connectionsNamed(shared)).toBe(1);
    await a.publish(message({ topic: `${topicPrefix}.own` }), { mandatory: true });
    await b.publish(message({ topic: `${topicPrefix}.shared` }), { mandatory: true });
    await waitFor(() => gotA.got.length === 1 && gotB.got.length === 1);
    // close() closes both.
    await a.close();
    await waitFor(async () => (await connectionsNamed(own)) === 0);
  });

  it('consumes a foreign non-durable queue as it is, and sends straight to a queue', async () => {
    const conn = await rawConnection();
    const ch = await conn.createChannel();
    const hello = `hello-${RUN}`;
    await ch.assertQueue(hello, { durable: false });
    const backend = await make();
    const before = errors.length;
    const c = collect();
    await backend.subscribe(
      { service: svc('hello'), queue: hello, topics: [], external: true, concurrency: 2 },
      c.handler,
    );
    ch.sendToQueue(hello, Buffer.from('plain text'), { contentType: 'text/plain' });
    await waitFor(() => c.got.length === 1);
    expect(c.got[0]).toMatchObject({ topic: hello, queue: hello, attempt: 1 });
    expect(c.got[0].body.toString()).toBe('plain text');

    const inbox = `raw-inbox-${RUN}`;
    await ch.assertQueue(inbox, { durable: true });
    const received: ConsumeMessage[] = [];
    await ch.consume(inbox, (m) => m && received.push(m), { noAck: true });
    const sent = message({ queue: inbox }, { hi: true });
    await backend.publish(sent, { mandatory: true });
    await waitFor(() => received.length === 1);
    expect(received[0].properties).toMatchObject({
      messageId: sent.messageId,
      deliveryMode: 2,
      contentType: 'application/json',
    });
    expect(JSON.parse(received[0].content.toString())).toEqual({ hi: true });
    expect(errors.slice(before)).toEqual([]);
    await ch.close();
  });

  it('resumes consuming and publishing after the broker closes its connection', async () => {
    const backend = await make({
      connectionName: `reconnect-${RUN}`,
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2 },
    });
    const statuses: BackendStatus[] = [];
    backend.on('status', (s) => statuses.push(s));
    const topic = `${topicPrefix}.resume`;
    const c = collect();
    await backend.subscribe(spec(svc('resume'), 'q', [topic]), c.handler);
    await backend.publish(message({ topic }), { mandatory: true });
    await waitFor(() => c.got.length === 1);
    const connections = (
      await run('rabbitmqctl', ['-q', 'list_connections', 'client_properties', 'timeout'])
    ).stdout;
    const ours = connections.split('\n').find((line) => line.includes(`reconnect-${RUN}`));
    // The default heartbeat: a dead link is found in about 10 s.
    expect(ours?.trim().endsWith('\t5')).toBe(true);

    let duringOutage: Promise<void> | undefined;
    const off = backend.on('status', (s) => {
      if (s === 'reconnecting' && !duringOutage)
        duringOutage = backend.publish(message({ topic }), { mandatory: true });
    });
    await closeConnectionsNamed(`reconnect-${RUN}`);
    await waitFor(() => duringOutage !== undefined && backend.status === 'connected', {
      timeoutMs: 10_000,
    });
    off();
    await duringOutage;
    await backend.publish(message({ topic }), { mandatory: true });
    await waitFor(() => c.got.length === 3, { timeoutMs: 10_000 });
    expect(statuses).toEqual(expect.arrayContaining(['reconnecting', 'connected']));
  }, 30_000);

  it('re-subscribes as soon as the connection is back, not a reconnect delay later', async () => {
    const name = `resub-${RUN}`;
    // A long reconnect delay: the connection itself retries at once; consumers must not wait it.
    const backend = await make({
      connectionName: name,
      reconnect: { initialDelayMs: 3_000, maxDelayMs: 3_000, multiplier: 1 },
    });
    const topic = `${topicPrefix}.resub`;
    await backend.subscribe(spec(svc('resub'), 'q', [topic]), collect().handler);
    let reconnected = false;
    backend.on('status', (s) => {
      if (s === 'connected') reconnected = true;
    });
    await closeConnectionsNamed(name);
    await waitFor(() => reconnected, { timeoutMs: 5_000 });
    await waitFor(() => backend.consumerStates()[0].attached, {
      timeoutMs: 1_000,
      message: 'consumer attached within 1 s of the reconnection',
    });
  }, 30_000);

  it('writes publishes in flight at a connection close again, and rejects none', async () => {
    const name = `inflight-${RUN}`;
    const backend = await make({
      connectionName: name,
      reconnect: { initialDelayMs: 50, maxDelayMs: 500, multiplier: 2 },
    });
    const topic = `${topicPrefix}.inflight`;
    const c = collect();
    await backend.subscribe(spec(svc('inflight'), 'q', [topic], { concurrency: 50 }), c.handler);
    const closing = closeConnectionsNamed(name);
    let closed = false;
    void closing.then(() => (closed = true));
    // Publish in batches until the close has happened, and one batch more.
    const sent: string[] = [];
    const results: Array<PromiseSettledResult<void>> = [];
    for (let last = false; !last;) {
      last = closed;
      const batch = Array.from({ length: 100 }, () => message({ topic }));
      sent.push(...batch.map((m) => m.messageId));
      results.push(
        ...(await Promise.allSettled(batch.map((m) => backend.publish(m, { mandatory: true })))),
      );
    }
    await closing;
    const rejected = results.filter((r) => r.status === 'rejected');
    expect(rejected).toEqual([]);
    await waitFor(() => new Set(c.got.map((d) => d.messageId)).size === sent.length, {
      timeoutMs: 15_000,
    });
  }, 30_000);

  it('re-declares and re-subscribes when the broker cancels the consumer (queue deleted)', async () => {
    const backend = await make({
      reconnect: { initialDelayMs: 50, maxDelayMs: 500, multiplier: 2 },
    });
    const topic = `${topicPrefix}.deleted`;
    const queue = `${svc('deleted')}.q`;
    const c = collect();
    await backend.subscribe(spec(svc('deleted'), 'q', [topic]), c.handler);
    const ch = await (await rawConnection()).createChannel();
    await ch.deleteQueue(queue);
    await ch.close();
    await waitFor(async () => (await consumerCount(queue)) === 1);
    await backend.publish(message({ topic }), { mandatory: true });
    await waitFor(() => c.got.length === 1);
  });

  it('cancel() stops intake while the in-flight delivery still settles', async () => {
    const backend = await make();
    const topic = `${topicPrefix}.cancel`;
    const queue = `${svc('cancel')}.q`;
    const hold = gate();
    let calls = 0;
    const sub = await backend.subscribe(spec(svc('cancel'), 'q', [topic]), async () => {
      calls++;
      await hold.promise;
      return { action: 'ack' };
    });
    await backend.publish(message({ topic }), { mandatory: true });
    await waitFor(() => calls === 1);
    await sub.cancel();
    hold.open();
    await backend.publish(message({ topic }), { mandatory: true });
    await waitFor(
      async () => (await queueDepth(queue)) === 1 && (await consumerCount(queue)) === 0,
    );
    expect(calls).toBe(1);
  });

  it('bounds unconfirmed publishes and confirms every one of a burst', async () => {
    const backend = await make({ maxInFlightPublishes: 4 });
    const topic = `${topicPrefix}.burst`;
    const c = collect();
    await backend.subscribe(spec(svc('burst'), 'q', [topic], { concurrency: 50 }), c.handler);
    await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        backend.publish(message({ topic }, { i, pad: 'x'.repeat(2000) }), { mandatory: true }),
      ),
    );
    await waitFor(() => c.got.length === 300);
    expect(new Set(c.got.map((d) => d.messageId)).size).toBe(300);
  });

  it('closes with in-flight work settled, and delivers nothing after close', async () => {
    const backend = await make();
    const publisher = await make();
    const topic = `${topicPrefix}.closing`;
    const queue = `${svc('closing')}.q`;
    const hold = gate();
    let calls = 0;
    await backend.subscribe(spec(svc('closing'), 'q', [topic]), async () => {
      calls++;
      await hold.promise;
      return { action: 'ack' };
    });
    await publisher.publish(message({ topic }), { mandatory: true });
    await waitFor(() => calls === 1);
    const closing = backend.close();
    hold.open();
    await closing;
    expect(backend.status).toBe('closed');
    await expect(backend.publish(message({ topic }), { mandatory: true })).rejects.toBeInstanceOf(
      BackendClosedError,
    );
    await expect(backend.close()).resolves.toBeUndefined();
    expect(await queueDepth(queue)).toBe(0);
    await publisher.publish(message({ topic }), { mandatory: true });
    await waitFor(async () => (await queueDepth(queue)) === 1);
    expect(calls).toBe(1);
  });

  it('validates options and never shows credentials', async () => {
    expect(() => new AmqpBackend({})).toThrow(MessagingConfigError);
    expect(() => new AmqpBackend({ url: 'http://u:secret1@host' })).toThrow(
      /amqp:\/\/ or amqps:\/\//,
    );
    expect(() => new AmqpBackend({ url: 'http://u:secret1@host' })).not.toThrow(/secret1/);
    expect(() => new AmqpBackend({ url: URL, prefetch: -1 })).toThrow(/prefetch/);
    expect(() => new AmqpBackend({ url: URL, publishTimeoutMs: 0 })).toThrow(/publishTimeoutMs/);
    const wrong = new AmqpBackend({
      url: 'amqp://guest:hunter2-secret@127.0.0.1:5672',
      connectTimeoutMs: 1500,
      reconnect: { initialDelayMs: 100 },
    });
    const seen: Error[] = [];
    wrong.on('error', (e) => seen.push(e));
    const failed = await wrong.connect().then(
      () => undefined,
      (e: Error) => e,
    );
    await wrong.close();
    expect(failed).toBeInstanceOf(Error);
    expect(failed?.message).toMatch(/amqp:\/\/guest:\*\*\*@127\.0\.0\.1/);
    expect(seen.length).toBeGreaterThan(0);
    for (const e of [failed, ...seen]) expect(`${e?.message} ${e?.stack}`).not.toContain('hunter2');
  });
});
