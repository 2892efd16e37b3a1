import { Controller, type INestApplication } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import {
  Consume,
  DeadLetterService,
  InMemoryBackend,
  InMemoryBroker,
  MessagingConfigError,
  MessagingModule,
  MessagingPublisher,
  MessagingServer,
} from '@app/messaging';
import { waitFor } from '@app/messaging/testing';
import { RecordedMetrics } from './support/recorded-metrics';

let seq = 0;

describe('@Consume(..., { circuitBreaker })', () => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('opens after N failures, holds the messages without losing any, tries one after openMs and closes on its success', async () => {
    const topic = `breaker${++seq}.${Date.now()}`;
    let down = true;
    const calls: number[] = [];
    const handled: number[] = [];
    @Controller()
    class Payments {
      @Consume(topic, {
        concurrency: 1,
        retry: { maxAttempts: 10, backoff: { initialDelayMs: 20, multiplier: 1, jitter: 0 } },
        circuitBreaker: { failures: 2, windowMs: 10_000, openMs: 300 },
      })
      charge(@Payload() p: { n: number }) {
        calls.push(p.n);
        if (down) throw new Error('gateway down');
        handled.push(p.n);
      }
    }
    const metrics = new RecordedMetrics();
    const moduleRef = await Test.createTestingModule({
      imports: [
        MessagingModule.forRoot({
          service: `breaker-${seq}`,
          backend: new InMemoryBackend({ broker: new InMemoryBroker() }),
          metrics,
        }),
      ],
      controllers: [Payments],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    app.connectMicroservice({ strategy: app.get(MessagingServer) });
    await app.startAllMicroservices();
    await app.init();
    const server = app.get(MessagingServer);
    const circuit = () => server.handlers.find((h) => h.handler === 'Payments.charge')?.circuit;
    expect(circuit()).toBe('closed');

    const publisher = app.get(MessagingPublisher);
    await publisher.publish({ topic }, { n: 1 });
    await waitFor(() => circuit() === 'open', { message: 'the circuit opened' });
    expect(metrics.get('circuitOpen', { handler: 'Payments.charge' })).toBe(1);
    expect(metrics.get('circuitOpened', { handler: 'Payments.charge' })).toBe(1);
    // While open, new messages wait: the handler is not called (until the trial).
    const before = calls.length;
    for (const n of [2, 3, 4]) await publisher.publish({ topic }, { n });
    expect(calls.length).toBe(before);

    down = false;
    await waitFor(() => handled.length === 4, {
      message: 'all four handled once the trial succeeded',
    });
    expect(handled.sort()).toEqual([1, 2, 3, 4]);
    expect(circuit()).toBe('closed');
    expect(metrics.get('circuitOpen', { handler: 'Payments.charge' })).toBe(0);
    expect(await app.get(DeadLetterService).list()).toEqual([]);
  });

  it('refuses a breaker without failures, or with a bad number, where @Consume is written', () => {
    expect(() => {
      class A {
        @Consume('a.b', { circuitBreaker: {} as never })
        handle() {}
      }
      return A;
    }).toThrow(MessagingConfigError);
    expect(() => {
      class B {
        @Consume('a.b', { circuitBreaker: { failures: 0 } })
        handle() {}
      }
      return B;
    }).toThrow(/circuitBreaker: failures/);
  });
});
