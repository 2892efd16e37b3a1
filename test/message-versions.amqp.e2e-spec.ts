import { randomUUID } from 'node:crypto';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { AmqpBackend, Consume, DeadLetterService, MessageContext } from '@app/messaging';
import { MessagingHeaders } from '@app/messaging/backend';
import { useContractHarness, waitFor } from '@app/messaging/testing';
import { BROKER_URL, deleteBrokerObjects } from '../libs/messaging/src/testing/rabbitmq.fixture';

/** Message versions through RabbitMQ: the version header travels as an AMQP header and back. */
const RUN = randomUUID().slice(0, 8);
afterAll(() => deleteBrokerObjects(RUN), 30_000);

describe('message versions (RabbitMQ)', () => {
  const h = useContractHarness(
    () =>
      new AmqpBackend({ url: BROKER_URL, namespace: `versions-${RUN}`, publishTimeoutMs: 2000 }),
    { servicePrefix: `versions-${RUN}` },
  );

  it('upcasts version 1, takes version 2 and dead-letters version 3, by the header the broker carried', async () => {
    const { service, topic } = h.unique();
    const seen: Array<{ order: unknown; version: number; header: unknown }> = [];
    @Controller()
    class Orders {
      @Consume(topic, { version: 2, upcast: { 1: (v1: object) => ({ ...v1, upcast: true }) } })
      take(@Payload() order: unknown, @Ctx() ctx: MessageContext): void {
        seen.push({ order, version: ctx.version, header: ctx.headers[MessagingHeaders.VERSION] });
      }
    }
    const app = await h.start(service, [Orders]);
    const publisher = h.publisherOf(app);
    await publisher.publish({ topic }, { id: 1 });
    await publisher.publish({ topic, version: 2 }, { id: 2 });
    await publisher.publish({ topic }, { id: 3 }, { version: 3 });
    await waitFor(() => seen.length === 2);
    expect(seen.sort((a, b) => a.version - b.version)).toEqual([
      { order: { id: 1, upcast: true }, version: 1, header: undefined },
      { order: { id: 2 }, version: 2, header: 2 },
    ]);
    const deadLetters = app.get(DeadLetterService);
    await waitFor(async () => (await deadLetters.list()).length === 1);
    const [letter] = await deadLetters.list();
    expect(letter).toMatchObject({ reason: 'unrecoverable', payload: { id: 3 } });
    expect(letter.error).toContain('the message is version 3, newer than the version 2');
    expect(letter.headers[MessagingHeaders.VERSION]).toBe(3);
  });
});
