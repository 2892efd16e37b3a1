/**
 * What the AMQP backend believes of a sender: a reply goes only to a direct reply-to address or a
 * queue the application listed, never wherever a request asks (issue 9, defect 8).
 */
import { waitFor } from '../../testing/wait-for';
import { useAmqpFixture } from '../../testing/amqp-test.fixture';

describe('AmqpBackend (RabbitMQ): replies only where it may', () => {
  const { make, rawConnection, spec, svc, topicPrefix, run, queueDepth, errors } = useAmqpFixture();
  const exchange = `test-amqp-${run}`;

  async function requestFromStranger(topic: string, replyTo: string): Promise<void> {
    const ch = await (await rawConnection()).createConfirmChannel();
    ch.publish(exchange, topic, Buffer.from('"hi"'), {
      contentType: 'application/json',
      messageId: `stranger-${Date.now()}`,
      replyTo,
    });
    await ch.waitForConfirms();
    await ch.close();
  }

  async function declare(queue: string): Promise<void> {
    const ch = await (await rawConnection()).createChannel();
    await ch.assertQueue(queue, { durable: false });
    await ch.close();
  }

  it('handles a request naming another queue as an event, and replies to a listed queue', async () => {
    const victim = `victim-${run}`;
    const listed = `listed-${run}`;
    await declare(victim);
    await declare(listed);
    const handled: Array<string | undefined> = [];
    const handler = async (d: { replyTo?: string }) => {
      handled.push(d.replyTo);
      return {
        action: 'ack' as const,
        reply: { body: Buffer.from('"secret"'), contentType: 'application/json', headers: {} },
      };
    };

    const strict = await make();
    const topic = `${topicPrefix}.ask`;
    await strict.subscribe(spec(svc('strict'), 'q', [topic]), handler);
    await requestFromStranger(topic, victim);
    await waitFor(() => handled.length === 1);
    expect(handled).toEqual([undefined]);
    await waitFor(() => errors.some((e) => e.message.includes(`reply to queue '${victim}'`)));
    expect(errors.find((e) => e.message.includes(victim))?.message).toMatch(/replyToQueues/);
    expect(await queueDepth(victim)).toBe(0);

    const trusting = await make({ replyToQueues: [listed] });
    const other = `${topicPrefix}.ask2`;
    await trusting.subscribe(spec(svc('trusting'), 'q', [other]), handler);
    await requestFromStranger(other, listed);
    await waitFor(async () => (await queueDepth(listed)) === 1);
    expect(handled.at(-1)).toBe(listed);
  });
});
