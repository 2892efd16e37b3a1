import {
  type CallHandler,
  type CanActivate,
  Controller,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  BatchContext,
  Consume,
  currentMessage,
  InMemoryBackend,
  InMemoryBroker,
  MessagingConfigError,
  MessagingModule,
  MessagingPublisher,
  MessagingServer,
} from '@app/messaging';
import { MessagingTestKit, useContractHarness, waitFor } from '@app/messaging/testing';
import { RecordedMetrics } from './support/recorded-metrics';

const broker = new InMemoryBroker();

describe('batch consumption (memory backend)', () => {
  const h = useContractHarness(() => new InMemoryBackend({ broker }), { servicePrefix: 'batch' });

  it('gives @Ctx() a BatchContext whose items match the payloads, and runs guards and interceptors once per batch', async () => {
    const { service, topic } = h.unique();
    const seen: Array<{
      payloads: unknown[];
      ids: string[];
      scope: unknown;
      context: BatchContext;
    }> = [];
    const enhancers = { guard: 0, interceptor: 0 };
    @Injectable()
    class CountingGuard implements CanActivate {
      canActivate(): boolean {
        enhancers.guard++;
        return true;
      }
    }
    @Injectable()
    class CountingInterceptor implements NestInterceptor {
      intercept(_ctx: ExecutionContext, next: CallHandler) {
        enhancers.interceptor++;
        return next.handle();
      }
    }
    @Controller()
    class Handler {
      @Consume(topic, { batch: { size: 3, maxWaitMs: 5_000 } })
      @UseGuards(CountingGuard)
      @UseInterceptors(CountingInterceptor)
      handle(@Payload() payloads: Array<{ n: number }>, @Ctx() batch: BatchContext): void {
        seen.push({
          payloads,
          ids: batch.items.map((item) => item.messageId),
          scope: currentMessage(),
          context: batch,
        });
      }
    }
    const app = await h.start(service, [Handler]);
    const publisher = app.get(MessagingPublisher);
    const ids = await Promise.all([1, 2, 3].map((n) => publisher.publish({ topic }, { n })));
    await waitFor(() => seen.length === 1);
    const [call] = seen;
    // items[i] is the context of payloads[i].
    const idOf = new Map(ids.map((id, i) => [i + 1, id]));
    expect(call.ids).toEqual(call.payloads.map((p) => idOf.get((p as { n: number }).n)));
    expect(enhancers).toEqual({ guard: 1, interceptor: 1 });
    // A batch runs in no one message's scope.
    expect(call.scope).toBeUndefined();
    expect(call.context).toBeInstanceOf(BatchContext);
    expect(call.context.size).toBe(3);
  });

  it('counts items, not batches, in consumed_total', async () => {
    const { service, topic } = h.unique();
    const metrics = new RecordedMetrics();
    const handler = 'Handler.handle';
    @Controller()
    class Handler {
      @Consume(topic, { batch: { size: 4, maxWaitMs: 5_000 }, retry: false })
      handle(@Payload() payloads: Array<{ ok: boolean }>): void {
        if (payloads.some((p) => !p.ok)) throw new Error('one bad apple');
      }
    }
    const app = await h.start(service, [Handler], { metrics });
    const publisher = app.get(MessagingPublisher);
    await Promise.all([true, true, true, true].map((ok) => publisher.publish({ topic }, { ok })));
    await Promise.all([true, false, true, true].map((ok) => publisher.publish({ topic }, { ok })));
    await waitFor(() => metrics.get('consumed', { handler, topic, outcome: 'dead-letter' }) === 4);
    expect(metrics.get('consumed', { handler, topic, outcome: 'ack' })).toBe(4);
    expect(metrics.get('deadLettered', { handler, reason: 'unrecoverable' })).toBeUndefined();
    expect(metrics.observations.filter((o) => o.metric === 'handlerDuration')).toHaveLength(8);
    await waitFor(() => metrics.get('inFlight', { handler }) === 0);
  });

  it('on close, gives back unhandled the messages still waiting for their batch', async () => {
    const { service, topic } = h.unique();
    const handled: Array<{ n: number; redelivered: boolean; attempt: number }> = [];
    const makeHandler = (size: number) => {
      @Controller()
      class Handler {
        @Consume(topic, { batch: { size, maxWaitMs: 60_000 } })
        handle(@Payload() payloads: Array<{ n: number }>, @Ctx() batch: BatchContext): void {
          payloads.forEach((p, i) =>
            handled.push({
              n: p.n,
              redelivered: batch.items[i].redelivered,
              attempt: batch.items[i].attempt,
            }),
          );
        }
      }
      return Handler;
    };
    const first = await h.start(service, [makeHandler(10)]);
    const publisher = first.get(MessagingPublisher);
    await Promise.all([1, 2].map((n) => publisher.publish({ topic }, { n })));
    await waitFor(() => broker.work().inFlight === 2, { message: 'both waiting for their batch' });
    h.forget(first);
    await first.close();
    expect(handled).toEqual([]);
    // The next instance gets both as they were: not acknowledged, not retried (first attempt).
    await h.start(service, [makeHandler(2)]);
    await waitFor(() => handled.length === 2, { message: 'redelivered to the next instance' });
    expect(handled.sort((a, b) => a.n - b.n)).toEqual([
      { n: 1, redelivered: true, attempt: 1 },
      { n: 2, redelivered: true, attempt: 1 },
    ]);
  });

  it('holds the deliveries of a paused batch handler until resume', async () => {
    const { service, topic } = h.unique();
    const calls: number[][] = [];
    @Controller()
    class Handler {
      @Consume(topic, { batch: { size: 2, maxWaitMs: 5_000 } })
      handle(@Payload() payloads: Array<{ n: number }>): void {
        calls.push(payloads.map((p) => p.n));
      }
    }
    const app = await h.start(service, [Handler]);
    const server = app.get(MessagingServer);
    server.pause('Handler.handle');
    await Promise.all([1, 2].map((n) => app.get(MessagingPublisher).publish({ topic }, { n })));
    await waitFor(() => broker.work().inFlight === 2);
    expect(calls).toEqual([]);
    server.resume('Handler.handle');
    await waitFor(() => calls.length === 1);
    expect(calls[0].sort()).toEqual([1, 2]);
  });

  it('answers each request of a batch with the return value of the handler', async () => {
    const { service, topic } = h.unique();
    @Controller()
    class Handler {
      @Consume(topic, { batch: { size: 2, maxWaitMs: 5_000 } })
      handle(@Payload() payloads: Array<{ n: number }>): string {
        return `sum ${payloads.reduce((sum, p) => sum + p.n, 0)}`;
      }
    }
    const app = await h.start(service, [Handler]);
    const publisher = app.get(MessagingPublisher);
    const replies = await Promise.all(
      [1, 2].map((n) => publisher.request({ topic }, { n }, { timeoutMs: 5_000 })),
    );
    expect(replies).toEqual(['sum 3', 'sum 3']);
  });

  it('refuses at start-up a batch whose size × concurrency no broker would let in', async () => {
    const { service, topic } = h.unique();
    @Controller()
    class Handler {
      @Consume(topic, { batch: { size: 10_000, maxWaitMs: 10 }, concurrency: 7 })
      handle(): void {}
    }
    const starting = h.start(service, [Handler]);
    await expect(starting).rejects.toThrow(MessagingConfigError);
    await expect(starting).rejects.toThrow(
      /10000 × 7 = 70000 messages in flight, over 65535; lower concurrency/,
    );
  });
});

describe('batch consumption in the testing kit', () => {
  let kit: MessagingTestKit | undefined;
  afterEach(async () => {
    await kit?.close();
    kit = undefined;
  });

  it.each(['real', 'manual'] as const)(
    'settled() waits for a batch still collecting, and for its items (clock: %s)',
    async (clock) => {
      const calls: number[][] = [];
      @Controller()
      class Handler {
        @Consume('stock.counted', { batch: { size: 100, maxWaitMs: 300 } })
        count(@Payload() payloads: Array<{ n: number }>): void {
          calls.push(payloads.map((p) => p.n));
        }
      }
      kit = await MessagingTestKit.create(
        { imports: [MessagingModule.forRoot({ service: 'stock' })], controllers: [Handler] },
        { clock },
      );
      const started = Date.now();
      await Promise.all(
        [1, 2, 3].map((n) => (kit as MessagingTestKit).publish('stock.counted', { n })),
      );
      await kit.settled();
      expect(calls).toEqual([[1, 2, 3]]);
      // It waited for maxWaitMs (a size of 100 never came).
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    },
  );
});
