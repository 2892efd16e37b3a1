import { Controller, type Type } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { BrokerBackend } from '../backend/broker-backend.interface';
import { MessageContext } from '../context/message-context';
import { Consume } from '../decorators/consume.decorator';
import { MessagingHealthService } from '../health/messaging-health.service';
import { MessagingServer } from '../server/messaging.server';
import { UnroutableError } from '../errors/messaging.errors';
import { type BackendContractOptions, useContractHarness } from './contract-harness';
import { describeDelayContract } from './delay-contract';
import { runExclusiveContract } from './exclusive-contract';
import { describeFailureContract } from './failure-contract';
import { describeOrderingContract } from './ordering-contract';
import { runPropertiesContract } from './properties-contract';
import { describeRequestContract } from './request-contract';
import { describeBatchContract } from './batch-contract';
import { gate, waitFor } from './wait-for';

export type { BackendContractOptions } from './contract-harness';

/**
 * The behaviour every `BrokerBackend` must have, checked through real Nest apps built with
 * `@nestjs/testing`. A backend's spec calls it with a factory; each app gets its own backend
 * instance, so instances of one service compete and services fan out as they would across processes.
 * Routing and lifecycle are here; requests in `request-contract.ts`; retries, dead letters and bad
 * input in `failure-contract.ts`; the broker's own message properties (content encoding) in
 * `properties-contract.ts`.
 *
 * Loaded by `runBackendContract` (`run-backend-contract.ts`), the name backends' specs call.
 */
export function describeBackendContract(
  name: string,
  createBackend: () => BrokerBackend,
  options: BackendContractOptions = {},
): void {
  describe(`BrokerBackend contract: ${name}`, () => {
    const h = useContractHarness(createBackend, options);
    const { unique, start, publisherOf } = h;

    it('routes a topic to its handler with payload and context', async () => {
      const { service, topic } = unique();
      const seen: Array<{ payload: unknown; ctx: MessageContext }> = [];
      @Controller()
      class Handler {
        @Consume(topic)
        handle(@Payload() payload: unknown, @Ctx() ctx: MessageContext): void {
          seen.push({ payload, ctx });
        }
      }
      const app = await start(service, [Handler]);
      const messageId = await publisherOf(app).publish(
        { topic },
        { id: 7, items: ['a'] },
        { headers: { tenant: 'acme' } },
      );
      await waitFor(() => seen.length === 1);
      const [{ payload, ctx }] = seen;
      expect(payload).toEqual({ id: 7, items: ['a'] });
      expect(ctx.topic).toBe(topic);
      expect(ctx.messageId).toBe(messageId);
      expect(ctx.correlationId).toBe(messageId);
      expect(ctx.attempt).toBe(1);
      expect(ctx.redelivered).toBe(false);
      expect(ctx.headers.tenant).toBe('acme');
      expect(ctx.service).toBe(service);
    });

    it('gives each service a copy and splits a topic between instances of one service', async () => {
      const { service, topic } = unique();
      const other = `${service}-other`;
      const counts = new Map<string, number>();
      const makeHandler = (label: string): Type => {
        @Controller()
        class Handler {
          @Consume(topic, { concurrency: 1 })
          async handle(): Promise<void> {
            counts.set(label, (counts.get(label) ?? 0) + 1);
            await new Promise((resolve) => setImmediate(resolve));
          }
        }
        return Handler;
      };
      const a1 = await start(service, [makeHandler('a1')]);
      await start(service, [makeHandler('a2')]);
      await start(other, [makeHandler('b')]);
      const total = 20;
      for (let i = 0; i < total; i++) await publisherOf(a1).publish({ topic }, { i });
      await waitFor(
        () =>
          (counts.get('b') ?? 0) === total &&
          (counts.get('a1') ?? 0) + (counts.get('a2') ?? 0) === total,
      );
      expect(counts.get('a1')).toBeGreaterThan(0);
      expect(counts.get('a2')).toBeGreaterThan(0);
    });

    it('matches * and # wildcards', async () => {
      const { service, topic } = unique();
      const star: string[] = [];
      const hash: string[] = [];
      @Controller()
      class Handler {
        @Consume(`${topic}.order.*`)
        one(@Ctx() ctx: MessageContext): void {
          star.push(ctx.topic);
        }

        @Consume(`${topic}.#`)
        all(@Ctx() ctx: MessageContext): void {
          hash.push(ctx.topic);
        }
      }
      const app = await start(service, [Handler]);
      const publish = (t: string) =>
        publisherOf(app).publish({ topic: t }, {}, { allowUnroutable: true });
      await publish(`${topic}.order.created`);
      await publish(`${topic}.order.created.v2`);
      await publish(`${topic}.payment`);
      await waitFor(() => hash.length === 3);
      await waitFor(() => star.length >= 1);
      expect(star).toEqual([`${topic}.order.created`]);
      expect(hash.sort()).toEqual(
        [`${topic}.order.created`, `${topic}.order.created.v2`, `${topic}.payment`].sort(),
      );
    });

    it('consumes nothing in a producer-only instance (consumers: false), which still publishes and requests', async () => {
      const { service, topic } = unique();
      const handled: unknown[] = [];
      @Controller()
      class Handler {
        @Consume(topic)
        onEvent(@Payload() payload: unknown): void {
          handled.push(payload);
        }

        @Consume(`${topic}.ask`)
        ask(): string {
          return 'answer';
        }
      }
      const producerOnly = await start(service, [Handler], { consumers: false });
      const publisher = publisherOf(producerOnly);
      // Its own handlers subscribed nothing: no queue receives the topic.
      await expect(publisher.publish({ topic }, { n: 0 })).rejects.toBeInstanceOf(UnroutableError);
      expect(producerOnly.get(MessagingHealthService).check().handlers).toBeUndefined();
      await start(`${service}-consumer`, [Handler]);
      await publisher.publish({ topic }, { n: 1 });
      await expect(publisher.request({ topic: `${topic}.ask` }, {})).resolves.toBe('answer');
      await waitFor(() => handled.length === 1);
      expect(handled).toEqual([{ n: 1 }]);
    });

    it('holds the messages of a paused handler, losing none, and hands them over on resume', async () => {
      const { service, topic } = unique();
      const handled: number[] = [];
      const other: number[] = [];
      @Controller()
      class Handler {
        @Consume(topic, { concurrency: 5 })
        paused(@Payload() p: { n: number }): void {
          handled.push(p.n);
        }

        @Consume(`${topic}.other`)
        running(@Payload() p: { n: number }): void {
          other.push(p.n);
        }
      }
      const first = await start(service, [Handler]);
      const server = first.get(MessagingServer);
      expect(() => server.pause('Handler.nope')).toThrow(
        /one of: Handler\.paused, Handler\.running/,
      );
      server.pause('Handler.paused');
      const publisher = publisherOf(first);
      for (const n of [1, 2, 3]) await publisher.publish({ topic }, { n });
      await publisher.publish({ topic: `${topic}.other` }, { n: 9 });
      await waitFor(() => other.length === 1); // the other handler goes on
      expect(handled).toEqual([]);
      server.resume('Handler.paused');
      await waitFor(() => handled.length === 3);
      expect(handled.sort()).toEqual([1, 2, 3]);
      // Paused at close: what waited goes back to the broker, and the next instance handles it.
      server.pause();
      await publisher.publish({ topic }, { n: 4 });
      await first.close();
      h.forget(first);
      await start(service, [Handler]);
      await waitFor(() => handled.length === 4);
      expect(handled).toEqual([1, 2, 3, 4]);
      expect(other).toEqual([9]);
    });

    it('rejects an unroutable publish unless the producer allows it, and honours delayMs', async () => {
      const { service, topic } = unique();
      const received: number[] = [];
      @Controller()
      class Handler {
        @Consume(`${topic}.delayed`)
        handle(): void {
          received.push(Date.now());
        }
      }
      const app = await start(service, [Handler]);
      const publisher = publisherOf(app);
      await expect(publisher.publish({ topic: `${topic}.nobody` }, {})).rejects.toBeInstanceOf(
        UnroutableError,
      );
      await expect(
        publisher.publish({ topic: `${topic}.nobody` }, {}, { allowUnroutable: true }),
      ).resolves.toEqual(expect.any(String));
      const sentAt = Date.now();
      await expect(publisher.publish({ topic }, {}, { delayMs: -1 })).rejects.toThrow(
        /delayMs must be/,
      );
      // More of delays (exactness, fan-out, days, retries) in delay-contract.ts.
      await publisher.publish({ topic: `${topic}.delayed` }, {}, { delayMs: 300 });
      await waitFor(() => received.length === 1);
      expect(received[0] - sentAt).toBeGreaterThanOrEqual(300);
    });

    it('keeps at most `concurrency` handlers in flight per instance', async () => {
      const { service, topic } = unique();
      let inFlight = 0;
      let peak = 0;
      let done = 0;
      @Controller()
      class Handler {
        @Consume(topic, { concurrency: 2 })
        async handle(): Promise<void> {
          peak = Math.max(peak, ++inFlight);
          await new Promise((resolve) => setTimeout(resolve, 20));
          inFlight--;
          done++;
        }
      }
      const app = await start(service, [Handler]);
      const publisher = publisherOf(app);
      // Events and requests (which some brokers deliver from a second source) share the limit.
      await Promise.all([
        ...Array.from({ length: 8 }, (_, i) => publisher.publish({ topic }, { i })),
        ...Array.from({ length: 4 }, (_, i) => publisher.request({ topic }, { i })),
      ]);
      await waitFor(() => done === 12);
      expect(peak).toBe(2);
    });

    it('on close waits for in-flight handlers, acknowledges them, and takes no new delivery', async () => {
      const { service, topic } = unique();
      const hold = gate();
      const started: number[] = [];
      const finished: number[] = [];
      const makeHandler = (blocking: boolean): Type => {
        @Controller()
        class Handler {
          @Consume(topic, { concurrency: 1 })
          async handle(@Payload() p: { n: number }): Promise<void> {
            started.push(p.n);
            if (blocking) await hold.promise;
            finished.push(p.n);
          }
        }
        return Handler;
      };
      const first = await start(service, [makeHandler(true)]);
      await publisherOf(first).publish({ topic }, { n: 1 });
      await waitFor(() => started.length === 1);
      let closed = false;
      const closing = first.close().then(() => (closed = true));
      h.forget(first);
      // While the handler runs, close must not finish.
      await new Promise((resolve) => setImmediate(resolve));
      expect(closed).toBe(false);
      hold.open();
      await closing;
      expect(finished).toEqual([1]);

      // A message published after close waits in the queue for the next instance, not the closed one.
      const producer = await start(`${service}-producer`, []);
      await publisherOf(producer).publish({ topic }, { n: 2 });
      await start(service, [makeHandler(false)]);
      await waitFor(() => finished.length === 2);
      expect(started).toEqual([1, 2]);
      expect(finished).toEqual([1, 2]);
    });

    it('on close hands back, unacknowledged, the deliveries of handlers that outlive shutdownTimeoutMs', async () => {
      const { service, topic } = unique();
      const hold = gate();
      const seen: { n: number; redelivered: boolean; attempt: number }[] = [];
      const ended: number[] = [];
      const makeHandler = (closing: boolean): Type => {
        @Controller()
        class Handler {
          @Consume(topic, { concurrency: 2 })
          async handle(@Payload() p: { n: number }, @Ctx() ctx: MessageContext): Promise<void> {
            seen.push({ n: p.n, redelivered: ctx.redelivered, attempt: ctx.attempt });
            if (!closing) return;
            // 1 ends as soon as close() gives up on it, while the backend is closing; 2 outlives close().
            if (p.n === 1) await new Promise((r) => ctx.signal.addEventListener('abort', r));
            else await hold.promise;
            ended.push(p.n);
          }
        }
        return Handler;
      };
      const first = await start(service, [makeHandler(true)], { shutdownTimeoutMs: 200 });
      await Promise.all([1, 2].map((n) => publisherOf(first).publish({ topic }, { n })));
      await waitFor(() => seen.length === 2);
      h.forget(first);
      let closed = false;
      const closing = first.close().then(() => (closed = true));
      // close() does not wait for a handler it gave up on (it waited for the backend's own timeout).
      await waitFor(() => closed, { timeoutMs: 5_000, message: 'close() returned' });
      await closing;
      expect(ended).toEqual([1]);
      hold.open();
      await waitFor(() => ended.length === 2);

      // Neither was acknowledged: the next instance gets both, marked redelivered, same attempt.
      await start(service, [makeHandler(false)]);
      await waitFor(() => seen.length === 4);
      expect(seen.slice(2).sort((a, b) => a.n - b.n)).toEqual([
        { n: 1, redelivered: true, attempt: 1 },
        { n: 2, redelivered: true, attempt: 1 },
      ]);
    });

    describeRequestContract(h);
    describeFailureContract(h);
    describeDelayContract(h);
    describeOrderingContract(h);
    describeBatchContract(h);
  });
  runExclusiveContract(name, createBackend, options);
  runPropertiesContract(name, createBackend, options);
}
