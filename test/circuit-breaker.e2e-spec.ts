import { Controller, type INestApplication, type Type } from '@nestjs/common';
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
  UnrecoverableError,
} from '@app/messaging';
import { waitFor } from '@app/messaging/testing';
import { RecordedMetrics } from './support/recorded-metrics';

let seq = 0;

async function start(controllers: Type[], metrics: RecordedMetrics): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      MessagingModule.forRoot({
        service: `breaker-${++seq}`,
        backend: new InMemoryBackend({ broker: new InMemoryBroker() }),
        metrics,
      }),
    ],
    controllers,
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  app.connectMicroservice({ strategy: app.get(MessagingServer) });
  await app.startAllMicroservices();
  await app.init();
  return app;
}

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
        concurrency: 5,
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
    app = await start([Payments], metrics);
    const server = app.get(MessagingServer);
    const circuit = () => server.handlers.find((h) => h.handler === 'Payments.charge')?.circuit;
    expect(circuit()).toBe('closed');

    const publisher = app.get(MessagingPublisher);
    await publisher.publish({ topic }, { n: 1 });
    await waitFor(() => circuit() === 'open', { message: 'the circuit opened' });
    expect(metrics.get('circuitOpen', { handler: 'Payments.charge' })).toBe(1);
    expect(metrics.get('circuitOpened', { handler: 'Payments.charge' })).toBe(1);
    // While open, new messages wait: the handler is not called (until the trial, 300 ms later).
    const before = calls.length;
    for (const n of [2, 3, 4]) await publisher.publish({ topic }, { n });
    const charge = () => server.handlers.find((h) => h.handler === 'Payments.charge');
    // 2, 3, 4 and the retry of 1 reach the circuit instead of the handler.
    await waitFor(() => charge()?.held === 4, { message: 'four deliveries held by the circuit' });
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

  it('reopens on a failing trial, makes way for another trial after one that says nothing (an UnrecoverableError)', async () => {
    const topic = `breaker${++seq}.${Date.now()}`;
    let down = true;
    const handled: string[] = [];
    @Controller()
    class Gateway {
      @Consume(topic, { retry: false, circuitBreaker: { failures: 1, openMs: 100 } })
      send(@Payload() p: { id: string }) {
        if (p.id === 'bad') throw new UnrecoverableError('not a valid card');
        if (down) throw new Error('gateway down');
        handled.push(p.id);
      }
    }
    const metrics = new RecordedMetrics();
    app = await start([Gateway], metrics);
    const publisher = app.get(MessagingPublisher);
    const deadLetters = app.get(DeadLetterService);
    const opened = () => metrics.get('circuitOpened', { handler: 'Gateway.send' }) ?? 0;
    const dead = async () =>
      (await deadLetters.list()).map((l) => `${(l.payload as { id: string }).id}:${l.reason}`);

    await publisher.publish({ topic }, { id: 'm1' });
    await waitFor(() => opened() === 1, { message: 'opened by m1' });
    // The trial is 'bad': it says nothing of the gateway, so the circuit stays half-open.
    await publisher.publish({ topic }, { id: 'bad' });
    await waitFor(async () => (await dead()).includes('bad:unrecoverable'), {
      message: 'bad tried',
    });
    const circuit = () =>
      app?.get(MessagingServer).handlers.find((h) => h.handler === 'Gateway.send')?.circuit;
    expect(circuit()).toBe('half-open');
    // The next trial fails: open again.
    await publisher.publish({ topic }, { id: 'm2' });
    await waitFor(() => opened() === 2, { message: 'reopened by m2' });
    down = false;
    await publisher.publish({ topic }, { id: 'm3' });
    await waitFor(() => handled.includes('m3'), { message: 'm3 handled by the next trial' });
    expect(circuit()).toBe('closed');
    expect((await dead()).sort()).toEqual([
      'bad:unrecoverable',
      'm1:handler-error',
      'm2:handler-error',
    ]);
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
