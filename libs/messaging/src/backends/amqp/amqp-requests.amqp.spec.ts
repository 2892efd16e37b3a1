import {
  MessagingConfigError,
  RequestTimeoutError,
  UnroutableError,
} from '../../errors/messaging.errors';
import { gate, waitFor } from '../../testing/wait-for';
import { closeConnectionsNamed, useAmqpFixture } from '../../testing/amqp-test.fixture';

/**
 * AmqpBackend's requests: volatile ones (the default) through `<exchange>.requests` into a queue per
 * route that lives with its consumers, durable ones through the route's own queue (see
 * amqp-topology.ts and amqp-requester.ts).
 */
describe('AmqpBackend (RabbitMQ): requests', () => {
  const { make, message, spec, queueDepth, consumerCount, svc, topicPrefix, run } =
    useAmqpFixture();

  it.each([false, true])(
    'answers requests over direct reply-to, and times out (durable: %s)',
    async (durable) => {
      const backend = await make();
      const caller = await make();
      const topic = `${topicPrefix}.rpc${durable}.add`;
      const silent = `${topicPrefix}.rpc${durable}.silent`;
      await backend.subscribe(spec(svc(`rpc${durable}`), 'add', [topic]), async (d) => {
        const { a, b } = JSON.parse(d.body.toString());
        return {
          action: 'ack',
          reply: {
            body: Buffer.from(JSON.stringify(a + b)),
            headers: { 'x-r': 1 },
            contentType: 'application/json',
          },
        };
      });
      await backend.subscribe(spec(svc(`rpc${durable}`), 'silent', [silent]), async () => ({
        action: 'ack',
      }));
      const replies = await Promise.all(
        [1, 2, 3].map((i) =>
          caller.request(message({ topic }, { a: i, b: 10 }), { timeoutMs: 5000, durable }),
        ),
      );
      expect(replies.map((r) => JSON.parse(r.body.toString()))).toEqual([11, 12, 13]);
      expect(replies[0]).toMatchObject({ contentType: 'application/json', headers: { 'x-r': 1 } });
      await expect(
        caller.request(message({ topic: silent }), { timeoutMs: 300, durable }),
      ).rejects.toBeInstanceOf(RequestTimeoutError);
      await expect(
        caller.request(message({ topic: `${topicPrefix}.rpc.none` }), {
          timeoutMs: 20_000,
          durable,
        }),
      ).rejects.toBeInstanceOf(UnroutableError);
    },
  );

  it('keeps volatile requests out of the durable queue, in a queue that lives with its consumers', async () => {
    const server = await make();
    const caller = await make();
    const topic = `${topicPrefix}.vol.ask`;
    const service = svc('vol');
    const hold = gate();
    const seen: Array<{ queue: string; attempt: number; redelivered: boolean }> = [];
    const subscription = await server.subscribe(spec(service, 'ask', [topic]), async (d) => {
      seen.push({ queue: d.queue, attempt: d.attempt, redelivered: d.redelivered });
      await hold.promise;
      return { action: 'ack', reply: { body: Buffer.from('"yes"'), headers: {} } };
    });
    const requestQueue = `test-amqp-${run}.requests.${service}.ask`;
    expect(await consumerCount(requestQueue)).toBe(1);
    const asked = caller.request(message({ topic }), { timeoutMs: 10_000, durable: false });
    await waitFor(() => seen.length === 1);
    // While its handler runs, nothing of it is in the route's durable queue.
    expect(await queueDepth(`${service}.ask`)).toBe(0);
    expect(seen).toEqual([{ queue: `${service}.ask`, attempt: 1, redelivered: false }]);
    hold.open();
    expect((await asked).body.toString()).toBe('"yes"');

    // With its last consumer gone, RabbitMQ deletes the request queue: a volatile request is
    // refused at once, a durable one waits in the route's queue for an instance.
    await subscription.cancel();
    await waitFor(async () => (await consumerCount(requestQueue)) === -1, {
      message: 'the request queue deleted with its consumer',
    });
    await expect(
      caller.request(message({ topic }), { timeoutMs: 20_000, durable: false }),
    ).rejects.toBeInstanceOf(UnroutableError);
    await expect(
      caller.request(message({ topic }), { timeoutMs: 300, durable: true }),
    ).rejects.toBeInstanceOf(RequestTimeoutError);
    expect(await queueDepth(`${service}.ask`)).toBe(1);
  });

  it('sends every request the durable way when the topology is not its to declare', async () => {
    const owner = await make();
    const topic = `${topicPrefix}.managed.ask`;
    const service = svc('managed');
    // Declared by "someone else" (here: a backend that asserts topology), consumed by one that does not.
    await (
      await owner.subscribe(spec(service, 'ask', [topic]), async () => ({ action: 'ack' }))
    ).cancel();
    const server = await make({ assertTopology: false });
    const caller = await make({ assertTopology: false });
    await server.subscribe(spec(service, 'ask', [topic]), async () => ({
      action: 'ack',
      reply: { body: Buffer.from('"managed"'), headers: {} },
    }));
    const reply = await caller.request(message({ topic }), { timeoutMs: 10_000, durable: false });
    expect(reply.body.toString()).toBe('"managed"');
  });

  it('sends a volatile request to a named queue without an expiry its queue could dead-letter', async () => {
    const server = await make();
    const caller = await make();
    const service = svc('named');
    const queue = `${service}.ask`;
    // The route's (quorum) work queue exists, with a dead-letter queue; its instance stopped.
    await (
      await server.subscribe(spec(service, 'ask', [`${topicPrefix}.named.ask`]), async () => ({
        action: 'ack',
      }))
    ).cancel();
    await expect(
      caller.request(message({ queue }), { timeoutMs: 300, durable: false }),
    ).rejects.toBeInstanceOf(RequestTimeoutError);
    // It waits in the queue (its consumer skips it once it comes: its deadline passed); nothing of it
    // is among the service's dead letters, as a broker-side expiry would have put it.
    expect(await queueDepth(queue)).toBe(1);
    expect(await server.deadLetters.list(service)).toEqual([]);
  });

  it('refuses a second request in flight with the same message id, and answers the first', async () => {
    const server = await make();
    const caller = await make();
    const topic = `${topicPrefix}.same.ask`;
    const hold = gate();
    await server.subscribe(spec(svc('same'), 'ask', [topic]), async () => {
      await hold.promise;
      return { action: 'ack', reply: { body: Buffer.from('"first"'), headers: {} } };
    });
    const id = `same-${run}`;
    // A caller reusing its order id as the message id of two requests: replies carry only that id.
    const first = caller.request(message({ topic }, {}, { messageId: id }), {
      timeoutMs: 10_000,
      durable: false,
    });
    await expect(
      caller.request(message({ topic: `${topicPrefix}.same.other` }, {}, { messageId: id }), {
        timeoutMs: 10_000,
        durable: false,
      }),
    ).rejects.toBeInstanceOf(MessagingConfigError);
    hold.open();
    expect((await first).body.toString()).toBe('"first"');
  });

  it('fails the request in flight when the connection goes, and requests again on the next', async () => {
    const reconnect = { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2 };
    const server = await make({ connectionName: `rs-${run}`, reconnect });
    const caller = await make({ connectionName: `rc-${run}`, reconnect });
    const topic = `${topicPrefix}.recon.ask`;
    const hold = gate();
    let calls = 0;
    await server.subscribe(spec(svc('recon'), 'ask', [topic]), async () => {
      if (++calls === 1) await hold.promise;
      return { action: 'ack', reply: { body: Buffer.from('"yes"'), headers: {} } };
    });
    const inFlight = caller.request(message({ topic }), { timeoutMs: 20_000, durable: false });
    await waitFor(() => calls === 1);
    await closeConnectionsNamed(`rc-${run}`);
    await expect(inFlight).rejects.toThrow(/closed while waiting/);
    hold.open();
    await waitFor(() => caller.status === 'connected');
    const again = await caller.request(message({ topic }), { timeoutMs: 5000, durable: false });
    expect(again.body.toString()).toBe('"yes"');

    // The server's connection: its request queue goes with its consumer and comes back with it.
    await closeConnectionsNamed(`rs-${run}`);
    await waitFor(async () => {
      try {
        await caller.request(message({ topic }), { timeoutMs: 2000, durable: false });
        return true;
      } catch (error) {
        if (error instanceof UnroutableError) return false;
        throw error;
      }
    });
  });
});
