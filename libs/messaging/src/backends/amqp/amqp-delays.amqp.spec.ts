/**
 * Where RabbitMQ holds delays (`amqp-delay-levels.ts`, `amqp-parking.ts`): in the level of a delay's
 * highest bit, addressed to one queue; a delayed send to a named queue; and what the TTL tiers of
 * versions before the levels still hold when the library is upgraded.
 */
import { MessagingHeaders } from '../../backend/message-headers';
import { UnroutableError } from '../../errors/messaging.errors';
import { waitFor } from '../../testing/wait-for';
import { useAmqpFixture } from '../../testing/amqp-test.fixture';
import { delayLevelName } from './amqp-delay-levels';

describe('AmqpBackend (RabbitMQ): delays in the delay levels', () => {
  const { make, rawConnection, message, spec, collect, queueDepth, svc, topicPrefix, run } =
    useAmqpFixture();
  const exchange = `test-amqp-${run}`;

  it('parks a delay of days in the level of its highest bit, once per receiving queue', async () => {
    const backend = await make();
    const topic = `${topicPrefix}.days`;
    const a = collect();
    const b = collect();
    await backend.subscribe(spec(svc('days-a'), 'q', [topic]), a.handler);
    await backend.subscribe(spec(svc('days-b'), 'q', [topic]), b.handler);
    // 3 days = 259,200,000 ms: its highest bit is 2^27 (134,217,728 ms).
    await backend.publish(message({ topic }, {}, { delayMs: 3 * 86_400_000 }), {
      mandatory: true,
    });
    await waitFor(async () => (await queueDepth(delayLevelName(exchange, 27))) === 2);
    expect(await queueDepth(`${svc('days-a')}.q`)).toBe(0);
    expect(await queueDepth(`${svc('days-b')}.q`)).toBe(0);
    expect([...a.got, ...b.got]).toEqual([]);
  });

  it('sends to a named queue after its delay; refuses one that does not exist, or skips it if allowed', async () => {
    const backend = await make();
    const queue = `${svc('named')}.q`;
    const c = collect();
    await backend.subscribe(spec(svc('named'), 'q', [`${topicPrefix}.named`]), c.handler);
    const sentAt = Date.now();
    await backend.publish(message({ queue }, {}, { delayMs: 700 }), { mandatory: true });
    await waitFor(() => c.got.length === 1);
    expect(c.got[0].at - sentAt).toBeGreaterThanOrEqual(699);
    expect(c.got[0].at - sentAt).toBeLessThan(1_700);
    expect(c.got[0]).toMatchObject({ topic: queue, attempt: 1 });
    await expect(
      backend.publish(message({ queue: `${queue}-missing` }, {}, { delayMs: 700 }), {
        mandatory: true,
      }),
    ).rejects.toBeInstanceOf(UnroutableError);
    await backend.publish(message({ queue: `${queue}-missing` }, {}, { delayMs: 700 }), {
      mandatory: false,
    });
  });

  it('delivers what the TTL tiers of earlier versions still hold after an upgrade', async () => {
    const backend = await make();
    const topic = `${topicPrefix}.upgrade`;
    const queue = `${svc('upgrade')}.q`;
    const c = collect();
    await backend.subscribe(spec(svc('upgrade'), 'q', [topic]), c.handler);
    // The tiers as versions before the levels declared them, each holding one message.
    const ch = await (await rawConnection()).createChannel();
    const tiers = [
      { name: `${exchange}.retry.100`, deadLetterTo: '', routingKey: queue, attempt: 2 },
      { name: `${exchange}.delay.100`, deadLetterTo: exchange, routingKey: topic, attempt: 1 },
    ];
    for (const tier of tiers) {
      await ch.assertExchange(tier.name, 'fanout', { durable: true });
      await ch.assertQueue(tier.name, {
        durable: true,
        arguments: { 'x-message-ttl': 100, 'x-dead-letter-exchange': tier.deadLetterTo },
      });
      await ch.bindQueue(tier.name, tier.name, '');
      const headers = { [MessagingHeaders.ATTEMPT]: tier.attempt, [MessagingHeaders.TOPIC]: topic };
      ch.publish(tier.name, tier.routingKey, Buffer.from('{}'), { persistent: true, headers });
    }
    await ch.close();
    await waitFor(() => c.got.length === 2);
    expect(c.got.map((d) => [d.topic, d.attempt]).sort()).toEqual([
      [topic, 1],
      [topic, 2],
    ]);
  });
});
