/**
 * What the AMQP backend does when the broker's state is not what it left: a message retried and then
 * dead-lettered by the broker, a delay level deleted behind its back, a retry copy that cannot be written.
 * Each case once lost a message, took publishing down, or spun a handler (issue 9, defects 1 to 3).
 */
import { MessagingHeaders } from '../../backend/message-headers';
import { gate, waitFor } from '../../testing/wait-for';
import { useAmqpFixture } from '../../testing/amqp-test.fixture';
import { delayLevelName } from './amqp-delay-levels';
import { CONSUMER_GRACE_MS, MessagingHealthService } from '../../health/messaging-health.service';

describe('AmqpBackend (RabbitMQ): recovery from a broker that changed', () => {
  const {
    make,
    rawConnection,
    message,
    spec,
    failure,
    collect,
    queueDepth,
    svc,
    topicPrefix,
    run,
  } = useAmqpFixture();
  const exchange = `test-amqp-${run}`;

  it('replays a message retried and then dead-lettered by the delivery limit to its handler', async () => {
    const backend = await make({ deliveryLimit: 1 });
    const service = svc('limit');
    const topic = `${topicPrefix}.limit`;
    let replayed = false;
    const attempts: number[] = [];
    await backend.subscribe(spec(service, 'q', [topic]), async (d) => {
      attempts.push(d.attempt);
      if (replayed) return { action: 'ack' };
      if (d.attempt === 1) return { action: 'retry', delayMs: 100, failure: failure('once') };
      throw new Error('crashes its consumer'); // requeued by the backend: counts to the limit
    });
    await backend.publish(message({ topic }), { mandatory: true });
    await waitFor(async () => (await queueDepth(`${service}.dead-letter`)) === 1);
    const [letter] = await backend.deadLetters.list(service);
    // The newest x-death names the work queue; the delay levels it passed through are older.
    expect(letter).toMatchObject({ queue: `${service}.q`, reason: 'delivery-limit', topic });
    replayed = true;
    expect(await backend.deadLetters.replay(service, letter.id)).toBe(true);
    await waitFor(() => attempts.at(-1) === 1 && attempts.length > 3);
    expect(await backend.deadLetters.list(service)).toEqual([]);
  });

  it('declares a deleted delay level again, and keeps publishing meanwhile', async () => {
    const backend = await make();
    const service = svc('tier');
    const topic = `${topicPrefix}.tier`;
    const other = collect();
    const failing = collect((d) =>
      d.attempt === 1
        ? { action: 'retry', delayMs: 100, failure: failure('x') }
        : { action: 'ack' },
    );
    await backend.subscribe(spec(service, 'q', [topic]), failing.handler);
    await backend.subscribe(spec(svc('other'), 'q', [`${topicPrefix}.other`]), other.handler);
    await backend.publish(message({ topic }), { mandatory: true });
    await waitFor(() => failing.got.some((d) => d.attempt === 2));
    // Someone deletes a level 100 ms (0b1100100) waits in: its queue, then its exchange.
    const ch = await (await rawConnection()).createChannel();
    await ch.deleteQueue(delayLevelName(exchange, 6));
    await ch.deleteExchange(delayLevelName(exchange, 6));
    await ch.close();
    for (let i = 0; i < 3; i++) await backend.publish(message({ topic }), { mandatory: true });
    const others = Array.from({ length: 20 }, () => message({ topic: `${topicPrefix}.other` }));
    await Promise.all(others.map((m) => backend.publish(m, { mandatory: true })));
    await waitFor(() => failing.got.filter((d) => d.attempt === 2).length === 4);
    await waitFor(() => other.got.length === 20);
    expect(failing.got.filter((d) => d.attempt === 1)).toHaveLength(4);
  });

  it('spaces out the requeues of a message whose retry copy cannot be written', async () => {
    // An exchange of its own: the levels of the shared one are declared already.
    const own = `${exchange}-unwritable`;
    const backend = await make({
      exchange: own,
      deliveryLimit: 2,
      reconnect: { initialDelayMs: 300, maxDelayMs: 1_000, multiplier: 2 },
    });
    const service = svc('unwritable');
    const topic = `${topicPrefix}.unwritable`;
    // A queue of another kind already holds the name of a delay level (someone else's): RabbitMQ
    // refuses the levels' declaration, so every retry fails to publish.
    const ch = await (await rawConnection()).createChannel();
    await ch.assertQueue(delayLevelName(own, 0), { durable: true });
    await ch.close();
    const c = collect(() => ({ action: 'retry', delayMs: 7_500, failure: failure('e') }));
    await backend.subscribe(spec(service, 'q', [topic]), c.handler);
    await backend.publish(message({ topic }), { mandatory: true });
    // The delivery limit (2) takes the original to the dead-letter queue after 3 deliveries.
    await waitFor(async () => (await queueDepth(`${service}.dead-letter`)) === 1, {
      timeoutMs: 10_000,
    });
    expect(c.got).toHaveLength(3);
    expect(c.got[1].at - c.got[0].at).toBeGreaterThanOrEqual(240);
    expect(c.got[2].at - c.got[1].at).toBeGreaterThanOrEqual(480);
    expect(c.got[0].headers[MessagingHeaders.ATTEMPT]).toBeUndefined();
  });

  it('reports a consumer that cannot come back, and health says down once that lasts', async () => {
    const service = svc('gone');
    const topic = `${topicPrefix}.gone`;
    // Declared by one backend; consumed by another that may not declare (assertTopology: false).
    const declarer = await make();
    await (await declarer.subscribe(spec(service, 'q', [topic]), collect().handler)).cancel();
    const backend = await make({
      assertTopology: false,
      reconnect: { initialDelayMs: 50, maxDelayMs: 200, multiplier: 2 },
    });
    await backend.subscribe(spec(service, 'q', [topic]), collect().handler);
    const health = new MessagingHealthService(backend);
    expect(backend.consumerStates()).toEqual([{ queue: `${service}.q`, attached: true }]);
    expect(health.check().status).toBe('up');

    const ch = await (await rawConnection()).createChannel();
    await ch.deleteQueue(`${service}.q`);
    await ch.close();
    await waitFor(() => backend.consumerStates()[0].attached === false);
    const [state] = backend.consumerStates();
    expect(health.check((state.detachedSince as number) + CONSUMER_GRACE_MS - 1)).toMatchObject({
      status: 'up',
      connection: 'connected',
    });
    expect(health.check((state.detachedSince as number) + CONSUMER_GRACE_MS)).toMatchObject({
      status: 'down',
      connection: 'connected',
      consumers: [{ queue: `${service}.q`, attached: false }],
    });
  });

  it('lets a settlement that is still publishing its copy finish when the backend closes', async () => {
    const backend = await make();
    const service = svc('closing');
    const topic = `${topicPrefix}.closing`;
    const release = gate();
    let handled = 0;
    const subscription = await backend.subscribe(spec(service, 'q', [topic]), async () => {
      handled++;
      await release.promise;
      return { action: 'retry', delayMs: 0, failure: failure('after close began') };
    });
    await backend.publish(message({ topic }), { mandatory: true });
    await waitFor(() => handled === 1);
    // As the app shuts down: the server cancels its subscription, then the module closes the backend.
    await subscription.cancel();
    const closing = backend.close();
    release.open();
    await closing;
    // The retry copy went out (attempt 2), and the original was acknowledged.
    const ch = await (await rawConnection()).createChannel();
    const got = await ch.get(`${service}.q`, { noAck: true });
    await ch.close();
    expect(got && got.properties.headers?.[MessagingHeaders.ATTEMPT]).toBe(2);
    expect(await queueDepth(`${service}.q`)).toBe(0);
  });
});
