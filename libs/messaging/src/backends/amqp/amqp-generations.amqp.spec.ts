import { waitFor } from '../../testing/wait-for';
import { useAmqpFixture } from '../../testing/amqp-test.fixture';
import { requestQueueName } from './amqp-topology';

/**
 * Generations of a route's request queue on one broker (the node loss that moves them is the
 * cluster fault suite's, C1 and C3): instances that chose apart meet again on the earliest one
 * consumed. Another instance is played by a raw consumer of a generation; the recheck runs every
 * 200 ms here instead of 30 s.
 */
jest.mock('./amqp-topology', () => ({
  ...jest.requireActual<typeof import('./amqp-topology')>('./amqp-topology'),
  REQUEST_GENERATION_RECHECK_MS: 200,
}));

describe('AmqpBackend (RabbitMQ): generations of a request queue', () => {
  const { make, message, spec, svc, topicPrefix, run, rawConnection, consumerCount } =
    useAmqpFixture();
  const exchange = `test-amqp-${run}`;

  /** Declares generation `generation` as an instance does, and consumes it raw; returns its name. */
  async function rawInstanceOn(queue: string, generation: number, topic: string): Promise<string> {
    const ch = await (await rawConnection()).createChannel();
    const name = requestQueueName(exchange, queue, generation);
    await ch.assertExchange(`${exchange}.requests`, 'topic', { durable: true });
    await ch.assertQueue(name, {
      durable: true,
      autoDelete: true,
      arguments: { 'x-queue-type': 'classic', 'x-expires': 60_000 },
    });
    await ch.bindQueue(name, `${exchange}.requests`, topic);
    await ch.consume(name, () => undefined, { noAck: true });
    return name;
  }

  it('joins the generation others consume, and moves to an earlier one consumed later', async () => {
    const topic = `${topicPrefix}.gen.ev`;
    const route = spec(svc('gen'), 'ev', [topic]);
    const later = await rawInstanceOn(route.queue, 2, topic);
    const b = await make();
    await b.subscribe(route, async () => ({
      action: 'ack',
      reply: { body: Buffer.from('"B"'), headers: {} },
    }));
    // Generation 2 is the one consumed: B joins it (and not a fresh generation 0).
    expect(await consumerCount(later)).toBe(2);
    expect(await consumerCount(requestQueueName(exchange, route.queue, 0))).toBe(-1);

    const earlier = await rawInstanceOn(route.queue, 1, topic);
    await waitFor(async () => (await consumerCount(earlier)) === 2, {
      timeoutMs: 10_000,
      message: 'B on generation 1',
    });
    expect(await consumerCount(later)).toBe(1);
    // B still serves requests, from generation 1 (the raw instances never answer).
    const caller = await make();
    const answers = await Promise.allSettled(
      Array.from({ length: 6 }, () =>
        caller.request(message({ topic }), { timeoutMs: 1_000, durable: false }),
      ),
    );
    expect(answers.some((a) => a.status === 'fulfilled')).toBe(true);
  });
});
