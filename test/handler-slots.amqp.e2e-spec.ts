import { randomUUID } from 'node:crypto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { AmqpBackend, Consume, MessagingServer, RequestTimeoutError } from '@app/messaging';
import { gate, useContractHarness, waitFor } from '@app/messaging/testing';
import { BROKER_URL, deleteBrokerObjects } from '../libs/messaging/src/testing/rabbitmq.fixture';

/**
 * A route's `concurrency` across its two sources on RabbitMQ (its queue, and its volatile requests):
 * deliveries over the limit wait in the server for a slot. What happens to those that wait.
 */
const RUN = randomUUID().slice(0, 8);
afterAll(() => deleteBrokerObjects(RUN), 30_000);

/** The deliveries a server counts in flight (running, or waiting for a slot). */
const inFlightOf = (server: MessagingServer): number =>
  (server as unknown as { inFlight: { size: number } }).inFlight.size;

describe('handler slots (RabbitMQ)', () => {
  const h = useContractHarness(
    // A close waits for unsettled deliveries at most publishTimeoutMs: short here.
    () => new AmqpBackend({ url: BROKER_URL, exchange: `slots-${RUN}`, publishTimeoutMs: 2000 }),
    { servicePrefix: `slots-${RUN}` },
  );

  it('skips a request whose caller gave up while it waited for a slot', async () => {
    const { service, topic } = h.unique();
    const hold = gate();
    const ran: string[] = [];
    @Controller()
    class Handler {
      @Consume(topic, { concurrency: 1 })
      async handle(@Payload() body: { kind: string }): Promise<string> {
        ran.push(body.kind);
        if (body.kind === 'event') await hold.promise;
        return 'done';
      }
    }
    const app = await h.start(service, [Handler]);
    const caller = h.publisherOf(await h.start(`${service}-caller`, []));
    await caller.publish({ topic }, { kind: 'event' });
    await waitFor(() => ran.length === 1);
    const asked = caller.request({ topic }, { kind: 'request' }, { timeoutMs: 300 });
    await waitFor(() => inFlightOf(app.get(MessagingServer)) === 2, {
      message: 'the request waits for the one slot',
    });
    await expect(asked).rejects.toBeInstanceOf(RequestTimeoutError);
    hold.open();
    await caller.publish({ topic }, { kind: 'after' });
    await waitFor(() => ran.includes('after'));
    expect(ran).toEqual(['event', 'after']);
  });

  it('starts no handler once app.close() gave up waiting', async () => {
    const { service, topic } = h.unique();
    const hold = gate();
    const started: string[] = [];
    let finished = 0;
    @Controller()
    class Handler {
      @Consume(topic, { concurrency: 1 })
      async handle(@Payload() body: { kind: string }): Promise<string> {
        started.push(body.kind);
        await hold.promise;
        finished++;
        return 'done';
      }
    }
    const app = await h.start(service, [Handler], { shutdownTimeoutMs: 300 });
    const caller = h.publisherOf(await h.start(`${service}-caller`, []));
    await caller.publish({ topic }, { kind: 'event' });
    await waitFor(() => started.length === 1);
    // A request, from the route's second source, waits for the one slot.
    caller.request({ topic }, { kind: 'request' }, { timeoutMs: 30_000 }).catch(() => undefined);
    const server = app.get(MessagingServer);
    await waitFor(() => inFlightOf(server) === 2, { message: 'the request waits for a slot' });
    h.forget(app);
    await app.close(); // returns after shutdownTimeoutMs, the handler still running
    hold.open();
    await waitFor(() => finished === 1);
    // The slot it frees goes to the waiting request, which must not start: the app is closed.
    await waitFor(() => inFlightOf(server) === 0, { message: 'the waiting request let go' });
    expect(started).toEqual(['event']);
  });
});
