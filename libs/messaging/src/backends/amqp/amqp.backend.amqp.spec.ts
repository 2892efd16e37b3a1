import { MessagingHeaders } from '../../backend/message-headers';
import { UnroutableError } from '../../errors/messaging.errors';
import { gate, waitFor } from '../../testing/wait-for';
import { useAmqpFixture } from '../../testing/amqp-test.fixture';

describe('AmqpBackend (RabbitMQ): routing, retries, dead letters', () => {
  const { make, rawConnection, message, spec, failure, collect, queueDepth, svc, topicPrefix } =
    useAmqpFixture();

  it('acks the messages after a slow one while it still runs (its slot is the only one held)', async () => {
    const backend = await make();
    const slow = gate();
    const topic = `${topicPrefix}.hol`;
    const service = svc('hol');
    const handled: number[] = [];
    await backend.subscribe(spec(service, 'q', [topic], { concurrency: 2 }), async (d) => {
      const n = (JSON.parse(d.body.toString()) as { n: number }).n;
      if (n === 0) await slow.promise;
      handled.push(n);
      return { action: 'ack' };
    });
    await backend.publish(message({ topic }, { n: 0 }), { mandatory: true });
    for (let n = 1; n <= 20; n++)
      await backend.publish(message({ topic }, { n }), { mandatory: true });
    // With prefetch 2 and message 0 held, each of the others needs the ack of the one before.
    await waitFor(() => handled.length === 20, { message: '20 handled while message 0 runs' });
    expect(handled).not.toContain(0);
    slow.open();
    await waitFor(() => handled.length === 21);
    // Every one was acked: closing the channel puts nothing back.
    await backend.close();
    expect(await queueDepth(`${service}.q`)).toBe(0);
  });

  it('routes topics with wildcards and fills the delivery', async () => {
    const backend = await make();
    const a = collect();
    const b = collect();
    await backend.subscribe(spec(svc('wa'), 'one', [`${topicPrefix}.order.*`]), a.handler);
    await backend.subscribe(spec(svc('wb'), 'all', [`${topicPrefix}.order.#`]), b.handler);
    const first = message(
      { topic: `${topicPrefix}.order.created` },
      { id: 1 },
      { correlationId: 'corr-1' },
    );
    await backend.publish(first, { mandatory: true });
    await backend.publish(message({ topic: `${topicPrefix}.order.eu.created` }), {
      mandatory: true,
    });
    await waitFor(() => a.got.length === 1 && b.got.length === 2);
    const d = a.got[0];
    expect(d).toMatchObject({
      topic: `${topicPrefix}.order.created`,
      queue: `${svc('wa')}.one`,
      messageId: first.messageId,
      correlationId: 'corr-1',
      contentType: 'application/json',
      attempt: 1,
      redelivered: false,
    });
    expect(JSON.parse(d.body.toString())).toEqual({ id: 1 });
    expect(d.headers['x-test']).toBe('yes');
    expect(Math.abs((d.timestamp ?? 0) - first.timestamp)).toBeLessThan(1000);
    await waitFor(async () => (await queueDepth(`${svc('wa')}.one`)) === 0);
  });

  it('fans out between services and shares the work within one', async () => {
    const [one, two] = [await make(), await make()];
    const c1 = collect();
    const c2 = collect();
    const d = collect();
    const topic = `${topicPrefix}.work.item`;
    await one.subscribe(spec(svc('compete'), 'work', [topic], { concurrency: 1 }), c1.handler);
    await two.subscribe(spec(svc('compete'), 'work', [topic], { concurrency: 1 }), c2.handler);
    await one.subscribe(spec(svc('other'), 'work', [topic]), d.handler);
    for (let i = 0; i < 10; i++) await one.publish(message({ topic }, { i }), { mandatory: true });
    await waitFor(() => c1.got.length + c2.got.length === 10 && d.got.length === 10);
    expect(c1.got.length).toBeGreaterThan(0);
    expect(c2.got.length).toBeGreaterThan(0);
    expect(new Set([...c1.got, ...c2.got].map((x) => x.messageId)).size).toBe(10);
  });

  it('retries to the failing queue only, with attempt numbers and the delay honoured', async () => {
    const backend = await make();
    const topic = `${topicPrefix}.retry.me`;
    const failing = collect((dl) =>
      dl.attempt < 3
        ? { action: 'retry', delayMs: 180, failure: failure(`boom ${dl.attempt}`) }
        : { action: 'ack' },
    );
    const bystander = collect();
    await backend.subscribe(spec(svc('retry'), 'q', [topic]), failing.handler);
    await backend.subscribe(spec(svc('bystander'), 'q', [topic]), bystander.handler);
    await backend.publish(message({ topic }, { x: 1 }, { correlationId: 'c-r' }), {
      mandatory: true,
    });
    await waitFor(() => failing.got.length === 3);
    expect(failing.got.map((x) => x.attempt)).toEqual([1, 2, 3]);
    expect(failing.got[1].at - failing.got[0].at).toBeGreaterThanOrEqual(180);
    expect(failing.got[2].at - failing.got[1].at).toBeGreaterThanOrEqual(180);
    const third = failing.got[2];
    expect(third).toMatchObject({
      topic,
      queue: `${svc('retry')}.q`,
      messageId: failing.got[0].messageId,
      correlationId: 'c-r',
    });
    expect(third.headers[MessagingHeaders.LAST_ERROR]).toBe('boom 2');
    expect(third.headers[MessagingHeaders.FIRST_FAILURE]).toBe(
      failing.got[1].headers[MessagingHeaders.FIRST_FAILURE],
    );
    expect(third.headers['x-test']).toBe('yes');
    expect(JSON.parse(third.body.toString())).toEqual({ x: 1 });
    expect(bystander.got).toHaveLength(1);
  });

  it('does not hold a 100 ms retry behind a 5000 ms one', async () => {
    const backend = await make();
    const topic = `${topicPrefix}.tiers`;
    const c = collect((dl) =>
      dl.attempt > 1
        ? { action: 'ack' }
        : { action: 'retry', delayMs: JSON.parse(dl.body.toString()).delay, failure: failure('x') },
    );
    await backend.subscribe(spec(svc('tiers'), 'q', [topic]), c.handler);
    await backend.publish(message({ topic }, { delay: 5000 }), { mandatory: true });
    await waitFor(() => c.got.length === 1);
    await backend.publish(message({ topic }, { delay: 100 }), { mandatory: true });
    await waitFor(() => c.got.some((x) => x.attempt === 2), { timeoutMs: 3000 });
    const retried = c.got.filter((x) => x.attempt === 2);
    expect(retried.map((x) => JSON.parse(x.body.toString()).delay)).toEqual([100]);
    expect(retried[0].at - c.got[0].at).toBeLessThan(3000);
  });

  it('dead-letters with metadata, lists, replays and purges', async () => {
    const backend = await make();
    const service = svc('dead');
    const topic = `${topicPrefix}.dead`;
    let fail = true;
    const c = collect(() =>
      fail
        ? {
            action: 'dead-letter',
            failure: {
              ...failure('x'.repeat(3000)),
              reason: 'max-attempts',
              errorClass: 'TypeError',
            },
          }
        : { action: 'ack' },
    );
    await backend.subscribe(spec(service, 'q', [topic]), c.handler);
    expect(await backend.deadLetters.list(svc('nobody'))).toEqual([]);
    // A sender's claim of a late attempt is not believed: the first delivery is attempt 1.
    const sent = message(
      { topic },
      { v: 'é' },
      { headers: { 'x-test': 'yes', [MessagingHeaders.ATTEMPT]: 3 } },
    );
    await backend.publish(sent, { mandatory: true });
    await waitFor(async () => (await queueDepth(`${service}.dead-letter`)) === 1);
    const list = await backend.deadLetters.list(service);
    expect(list).toHaveLength(1);
    const dead = list[0];
    expect(dead).toMatchObject({
      messageId: sent.messageId,
      topic,
      queue: `${service}.q`,
      contentType: 'application/json',
      reason: 'max-attempts',
      errorClass: 'TypeError',
      attempts: 1,
    });
    expect(c.got[0].attempt).toBe(1);
    expect(dead.body.equals(sent.body)).toBe(true);
    expect(Buffer.byteLength(dead.error)).toBeLessThanOrEqual(1024);
    expect(dead.headers).toEqual({ 'x-test': 'yes' });
    expect(dead.deadLetteredAt.getTime()).toBeGreaterThanOrEqual(dead.lastFailedAt.getTime());
    expect(await backend.deadLetters.list(service)).toHaveLength(1);

    fail = false;
    expect(await backend.deadLetters.replay(service, 'no-such-id')).toBe(false);
    expect(await backend.deadLetters.replay(service, dead.id)).toBe(true);
    await waitFor(() => c.got.length === 2);
    expect(c.got[1]).toMatchObject({ attempt: 1, topic, messageId: sent.messageId });
    expect(await backend.deadLetters.list(service)).toEqual([]);

    fail = true;
    const two = [message({ topic }), message({ topic })];
    for (const m of two) await backend.publish(m, { mandatory: true });
    await waitFor(async () => (await queueDepth(`${service}.dead-letter`)) === 2);
    const twoIds = (await backend.deadLetters.list(service)).map((x) => x.messageId);
    expect(twoIds).toEqual(two.map((m) => m.messageId));
    fail = false;
    expect(await backend.deadLetters.replayAll(service)).toBe(2);
    await waitFor(() => c.got.length === 6);
    expect(c.got.slice(4).map((x) => x.attempt)).toEqual([1, 1]);
    fail = true;
    await backend.publish(message({ topic }), { mandatory: true });
    await waitFor(async () => (await queueDepth(`${service}.dead-letter`)) === 1);
    expect(await backend.deadLetters.purge(service)).toBe(1);
    expect(await backend.deadLetters.list(service)).toEqual([]);
  });

  it('lets two instances list and replay dead letters at once, each seeing every one in order', async () => {
    const [one, two] = [await make(), await make()];
    const service = svc('dlq2');
    const topic = `${topicPrefix}.dlq2`;
    await one.subscribe(spec(service, 'q', [topic]), async () => ({
      action: 'dead-letter',
      failure: failure('x'),
    }));
    const sent = Array.from({ length: 20 }, () => message({ topic }));
    for (const m of sent) await one.publish(m, { mandatory: true });
    await waitFor(async () => (await queueDepth(`${service}.dead-letter`)) === 20);
    const ids = sent.map((m) => m.messageId);
    const [a, b, c] = await Promise.all([
      one.deadLetters.list(service),
      two.deadLetters.list(service),
      two.deadLetters.list(service, { offset: 5, limit: 3 }),
    ]);
    expect(a.map((l) => l.messageId)).toEqual(ids);
    expect(b.map((l) => l.messageId)).toEqual(ids);
    expect(c.map((l) => l.messageId)).toEqual(ids.slice(5, 8));
    const [listed, replayed] = await Promise.all([
      one.deadLetters.list(service),
      two.deadLetters.replay(service, a[7].id),
    ]);
    expect(replayed).toBe(true);
    expect([20, 19]).toContain(listed.length);
    // The handler dead-letters it again (landing wherever the listing running meanwhile leaves it);
    // the others keep their order.
    await waitFor(async () => (await queueDepth(`${service}.dead-letter`)) === 20);
    const final = (await one.deadLetters.list(service)).map((l) => l.messageId);
    expect(final.filter((id) => id !== ids[7])).toEqual(ids.filter((_, i) => i !== 7));
    expect(final.filter((id) => id === ids[7])).toHaveLength(1);
  });

  it('rejects a replay whose queue is gone, and the dead letters stay usable', async () => {
    const consumer = await make();
    const service = svc('gone-q');
    const topic = `${topicPrefix}.goneq`;
    await consumer.subscribe(spec(service, 'q', [topic]), async () => ({
      action: 'dead-letter',
      failure: failure('x'),
    }));
    await consumer.publish(message({ topic }), { mandatory: true });
    await waitFor(async () => (await queueDepth(`${service}.dead-letter`)) === 1);
    // The consumer goes first: a consumer cancelled by the delete re-declares its queue.
    await consumer.close();
    const backend = await make();
    const [letter] = await backend.deadLetters.list(service);
    const ch = await (await rawConnection()).createChannel();
    await ch.deleteQueue(`${service}.q`);
    await ch.close();
    // A failed operation rejects for its caller only (no unhandled rejection), and frees the lock.
    await expect(backend.deadLetters.replay(service, letter.id)).rejects.toBeInstanceOf(
      UnroutableError,
    );
    expect((await backend.deadLetters.list(service)).map((l) => l.id)).toEqual([letter.id]);
  });

  it('rejects an unroutable publish with UnroutableError unless allowed', async () => {
    const backend = await make();
    await expect(
      backend.publish(message({ topic: `${topicPrefix}.nobody` }), { mandatory: true }),
    ).rejects.toBeInstanceOf(UnroutableError);
    await expect(
      backend.publish(message({ queue: svc('missing') }), { mandatory: true }),
    ).rejects.toBeInstanceOf(UnroutableError);
    await expect(
      backend.publish(message({ topic: `${topicPrefix}.nobody` }), { mandatory: false }),
    ).resolves.toBeUndefined();
  });
});
