import type { Channel, ChannelModel } from 'amqplib';
import type { ResolvedAmqpOptions } from './amqp-backend.options';
import { gate, waitFor } from '../../testing/wait-for';
import { useAmqpFixture } from '../../testing/amqp-test.fixture';

/**
 * A rolling deploy: instance A stops while instance B subscribes. A's consumer of the route's
 * request queue was the last one, so RabbitMQ deletes that queue between B's declaration of it and
 * B's consume, which then fails with 404 and closes B's channel. The pause between the two is made
 * here by wrapping `assertRequestQueue` (the one place the race can be held open).
 */
let between: (() => Promise<void>) | undefined;
jest.mock('./amqp-topology', () => {
  const actual = jest.requireActual<typeof import('./amqp-topology')>('./amqp-topology');
  return {
    ...actual,
    assertRequestQueue: async (
      conn: ChannelModel,
      ch: Channel,
      options: ResolvedAmqpOptions,
      queue: string,
      topics: readonly string[],
    ) => {
      const declared = await actual.assertRequestQueue(conn, ch, options, queue, topics);
      const hook = between;
      between = undefined;
      if (hook) await hook();
      return declared;
    },
  };
});

describe('AmqpBackend (RabbitMQ): an instance stopping while another subscribes', () => {
  const { make, message, spec, queueDepth, svc, topicPrefix } = useAmqpFixture();

  it('subscribes anyway, and handles an event waiting meanwhile once', async () => {
    const a = await make();
    const b = await make();
    const caller = await make();
    const topic = `${topicPrefix}.rolling.ev`;
    const route = spec(svc('rolling'), 'ev', [topic]);
    const subscriptionOfA = await a.subscribe(route, async () => ({ action: 'ack' }));
    between = async () => {
      // B declared the request queue; A stops now (RabbitMQ deletes it) and an event arrives.
      await subscriptionOfA.cancel();
      await caller.publish(message({ topic }, { n: 1 }), { mandatory: true });
    };
    const hold = gate();
    const seenByB: string[] = [];
    let settledByB = 0;
    await b.subscribe(route, async (d) => {
      if (d.replyTo !== undefined) {
        return { action: 'ack', reply: { body: Buffer.from('"B"'), headers: {} } };
      }
      seenByB.push(d.messageId);
      await hold.promise;
      settledByB++;
      return { action: 'ack' };
    });
    await waitFor(() => seenByB.length === 1);
    hold.open();
    await waitFor(() => settledByB === 1);
    // Acked, and never handed to B twice: no channel of B closed under a running handler.
    await waitFor(async () => (await queueDepth(route.queue)) === 0);
    expect(seenByB).toHaveLength(1);
    // B serves requests on the request queue it declared again.
    const reply = await caller.request(message({ topic }), { timeoutMs: 5000, durable: false });
    expect(reply.body.toString()).toBe('"B"');
  });
});
