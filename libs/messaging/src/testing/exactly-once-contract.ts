import { Controller, type INestApplication } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { BrokerBackend } from '../backend/broker-backend.interface';
import { MessageContext } from '../context/message-context';
import { Consume } from '../decorators/consume.decorator';
import { MessagingHealthService } from '../health/messaging-health.service';
import type { MessageStore } from '../store/message-store';
import { MessagingTransactions } from '../store/transactions';
import { FAST_RETRY, useContractHarness } from './contract-harness';
import { gate, waitFor } from './wait-for';
import { MESSAGING_STORE } from '../messaging.constants';
import { MessageProducer } from '../producer/message-producer';
import { MessagingPublisher } from '../producer/messaging.publisher';

/** Fast relay for tests: polls every 50 ms, backs off at most 200 ms. */
const FAST_OUTBOX = { pollIntervalMs: 50, maxBackoffMs: 200 };

/**
 * Inbox and outbox through real Nest apps: what `@Consume(..., { idempotent: true })` and
 * `MessagingTransactions` promise, on any backend and store. `createStore` gives each app its store
 * (apps of one service share one database, so a factory may return the same store's twin);
 * `waitingClaims` counts the claims of `store` waiting for another transaction (the store contract's).
 */
export function runExactlyOnceContract(
  name: string,
  createBackend: () => BrokerBackend,
  createStore: () => MessageStore,
  waitingClaims: (store: MessageStore) => Promise<number>,
): void {
  describe(`exactly-once effects: ${name}`, () => {
    const h = useContractHarness(createBackend, { servicePrefix: 'once' });
    const start = (service: string, controllers: Parameters<typeof h.start>[1]) =>
      h.start(service, controllers, {
        store: createStore(),
        outbox: FAST_OUTBOX,
        retry: FAST_RETRY,
      });
    const producer = (app: INestApplication, topic: string) =>
      new MessageProducer({ topic }, app.get(MessagingPublisher));

    it('runs an idempotent handler once per message id and acknowledges the duplicate', async () => {
      const { service, topic } = h.unique();
      const calls: string[] = [];
      @Controller()
      class Handler {
        @Consume(topic, { idempotent: true })
        handle(@Payload() body: { n: number }, @Ctx() ctx: MessageContext) {
          calls.push(`${ctx.messageId}:${body.n}`);
        }
      }
      const app = await start(service, [Handler]);
      const p = producer(app, topic);
      await p.publish({ n: 1 }, { messageId: 'm-1' });
      await p.publish({ n: 2 }, { messageId: 'm-1' });
      await p.publish({ n: 3 }, { messageId: 'm-2' });
      await waitFor(() => calls.includes('m-2:3'));
      // The duplicate was acknowledged, not retried nor dead-lettered: one more message flows after it.
      await p.publish({ n: 4 }, { messageId: 'm-3' });
      await waitFor(() => calls.includes('m-3:4'));
      // Both copies of m-1 may be delivered at once (concurrency): whichever claims first runs.
      expect(calls.filter((c) => c.startsWith('m-1:'))).toHaveLength(1);
      expect(calls).toHaveLength(3);
    });

    it('makes a concurrent duplicate wait for the first, then skips it', async () => {
      const { service, topic } = h.unique();
      const held = gate();
      let started = 0;
      let finished = 0;
      @Controller()
      class Handler {
        @Consume(topic, { idempotent: true, concurrency: 2 })
        async handle() {
          started++;
          await held.promise;
          finished++;
        }
      }
      const app = await start(service, [Handler]);
      const p = producer(app, topic);
      await p.publish({}, { messageId: 'same' });
      await p.publish({}, { messageId: 'same' });
      await waitFor(() => started === 1);
      const store = app.get<MessageStore>(MESSAGING_STORE);
      await waitFor(async () => (await waitingClaims(store)) === 1, {
        message: 'the duplicate waits for the first transaction',
      });
      expect(started).toBe(1);
      held.open();
      await waitFor(() => finished === 1);
      await p.publish({}, { messageId: 'next' });
      await waitFor(() => finished === 2);
      expect(started).toBe(2);
    });

    it('releases the id of a failed attempt: its retry runs, and what it published is never sent', async () => {
      const { service, topic } = h.unique();
      const attempts: number[] = [];
      const downstream: unknown[] = [];
      @Controller()
      class Handler {
        constructor(private readonly publisher: MessagingPublisher) {}
        @Consume(topic, { idempotent: true })
        async handle(@Ctx() ctx: MessageContext) {
          attempts.push(ctx.attempt);
          await new MessageProducer({ topic: `${topic}.done` }, this.publisher).publish({
            attempt: ctx.attempt,
          });
          if (ctx.attempt === 1) throw new Error('transient');
        }
        @Consume(`${topic}.done`)
        done(@Payload() body: unknown) {
          downstream.push(body);
        }
      }
      const app = await start(service, [Handler]);
      await producer(app, topic).publish({}, { messageId: 'retry-me' });
      await waitFor(() => downstream.length === 1);
      expect(attempts).toEqual([1, 2]);
      expect(downstream).toEqual([{ attempt: 2 }]);
    });

    it('releases the id of a delivery handed back at shutdown: the next instance runs it', async () => {
      const { service, topic } = h.unique();
      const hold = gate();
      const runs: boolean[] = [];
      let ended = 0;
      const makeHandler = (blocking: boolean) => {
        @Controller()
        class Handler {
          @Consume(topic, { idempotent: true })
          async handle(@Ctx() ctx: MessageContext) {
            runs.push(ctx.redelivered);
            if (blocking) await hold.promise;
            ended++;
          }
        }
        return Handler;
      };
      const first = await h.start(service, [makeHandler(true)], {
        store: createStore(),
        outbox: FAST_OUTBOX,
        retry: FAST_RETRY,
        shutdownTimeoutMs: 200,
      });
      await producer(first, topic).publish({}, { messageId: 'outlives-shutdown' });
      await waitFor(() => runs.length === 1);
      h.forget(first);
      await first.close();
      // Its handler ends after close: what it did must not mark the message handled.
      hold.open();
      await waitFor(() => ended === 1);
      await start(service, [makeHandler(false)]);
      await waitFor(() => runs.length === 2);
      expect(runs).toEqual([false, true]);
    });

    it('runs nothing once shutdown gave up: a duplicate waiting for the claim goes back too', async () => {
      const { service, topic } = h.unique();
      const held = gate();
      let started = 0;
      let next = 0;
      @Controller()
      class Held {
        @Consume(topic, { idempotent: true, concurrency: 2 })
        async handle() {
          started++;
          await held.promise;
        }
      }
      @Controller()
      class Next {
        @Consume(topic, { idempotent: true, concurrency: 2 })
        handle() {
          next++;
        }
      }
      const first = await h.start(service, [Held], {
        store: createStore(),
        outbox: FAST_OUTBOX,
        retry: FAST_RETRY,
        shutdownTimeoutMs: 200,
      });
      const p = producer(first, topic);
      await p.publish({}, { messageId: 'twice-at-shutdown' });
      await p.publish({}, { messageId: 'twice-at-shutdown' });
      await waitFor(() => started === 1);
      const store = first.get<MessageStore>(MESSAGING_STORE);
      await waitFor(async () => (await waitingClaims(store)) === 1, {
        message: 'the duplicate waits for the first transaction',
      });
      h.forget(first);
      await first.close();
      held.open();
      // The first one's claim was rolled back when close() gave up; the duplicate then got the
      // claim, and must not have run in the closed app.
      await start(service, [Next]);
      await waitFor(() => next === 1);
      expect(started).toBe(1);
    });

    it('sends what MessagingTransactions.run() published only once it committed', async () => {
      const { service, topic } = h.unique();
      const seen: unknown[] = [];
      @Controller()
      class Handler {
        @Consume(topic)
        handle(@Payload() body: unknown) {
          seen.push(body);
        }
      }
      const app = await start(service, [Handler]);
      const transactions = app.get(MessagingTransactions);
      const p = producer(app, topic);
      await expect(
        transactions.run(async () => {
          await p.publish({ kept: false });
          throw new Error('the insert failed');
        }),
      ).rejects.toThrow('the insert failed');
      const id = await transactions.run(async () => {
        expect(transactions.active).toBe(true);
        return p.publish({ kept: true }, { messageId: 'tx-1' });
      });
      expect(id).toBe('tx-1');
      await waitFor(() => seen.length === 1);
      await p.publish({ direct: true });
      await waitFor(() => seen.length === 2);
      expect(seen).toEqual([{ kept: true }, { direct: true }]);
    });

    const durable = createStore().durable;

    // Each kind of store has its own promise when the broker refuses a message.
    if (durable)
      it('durable store: keeps an unroutable message in the outbox, reports it, and sends it once a consumer exists', async () => {
        const { service, topic } = h.unique();
        const app = await start(`${service}-writer`, []);
        const transactions = app.get(MessagingTransactions);
        await transactions.run(() => producer(app, topic).publish({ late: true }));
        const health = app.get(MessagingHealthService);
        await waitFor(() => health.check().outbox?.lastError !== undefined, {
          message: 'health reports the relay failing',
        });
        expect(health.check()).toMatchObject({ status: 'up', outbox: { pending: 1 } });
        expect(health.check().outbox?.lastError).toMatch(/no queue|unroutable|nobody|no service/i);
        const seen: unknown[] = [];
        @Controller()
        class Late {
          @Consume(topic)
          handle(@Payload() body: unknown) {
            seen.push(body);
          }
        }
        await start(service, [Late]);
        await waitFor(() => seen.length === 1, { message: 'the relay sent it after its backoff' });
        await waitFor(() => health.check().outbox === undefined, { message: 'backlog drained' });
        expect(seen).toEqual([{ late: true }]);
      });
    else
      it('store that is not durable: publishes before the commit, so a refused message fails the transaction', async () => {
        const { service, topic } = h.unique();
        const app = await start(service, []);
        const transactions = app.get(MessagingTransactions);
        let committedWork = false;
        await expect(
          transactions.run(async () => {
            await producer(app, topic).publish({ nobody: true });
            committedWork = true;
          }),
        ).rejects.toThrow(/no queue|unroutable|nobody|no service/i);
        // The work itself ran; what it published was refused before the commit, which did not happen.
        expect(committedWork).toBe(true);
        expect(app.get(MessagingHealthService).check().outbox).toBeUndefined();
      });

    it('refuses a publish made after its transaction ended, rather than lose it', async () => {
      const { service, topic } = h.unique();
      const app = await start(service, []);
      const after = gate();
      let late: Promise<string> | undefined;
      await app.get(MessagingTransactions).run(async () => {
        // Not awaited: it runs once the transaction committed, still in its async context.
        late = after.promise.then(() => producer(app, topic).publish({ late: true }));
      });
      after.open();
      await expect(late).rejects.toThrow(/ended/);
    });

    it('refuses a publish left running by a failed handler: its transaction rolled back', async () => {
      const { service, topic } = h.unique();
      const after = gate();
      const attempts: number[] = [];
      let late: Promise<string> | undefined;
      let activeLate: boolean | undefined;
      @Controller()
      class Handler {
        constructor(
          private readonly publisher: MessagingPublisher,
          private readonly transactions: MessagingTransactions,
        ) {}
        @Consume(topic, { idempotent: true })
        async handle(@Ctx() ctx: MessageContext) {
          attempts.push(ctx.attempt);
          if (ctx.attempt > 1) return;
          late = after.promise.then(() => {
            activeLate = this.transactions.active;
            return new MessageProducer({ topic: `${topic}.late` }, this.publisher).publish({});
          });
          throw new Error('failed before the publish it started');
        }
      }
      const app = await start(service, [Handler]);
      await producer(app, topic).publish({}, { messageId: 'leaks' });
      await waitFor(() => attempts.length === 2, { message: 'the retry ran: attempt 1 ended' });
      after.open();
      await expect(late).rejects.toThrow(/ended/);
      expect(activeLate).toBe(false);
    });

    it('opens a new transaction for run() called after the transaction in scope ended', async () => {
      const { service, topic } = h.unique();
      const seen: unknown[] = [];
      @Controller()
      class Handler {
        @Consume(topic)
        handle(@Payload() body: unknown) {
          seen.push(body);
        }
      }
      const app = await start(service, [Handler]);
      const transactions = app.get(MessagingTransactions);
      const p = producer(app, topic);
      const after = gate();
      let later: Promise<string> | undefined;
      await transactions.run(async () => {
        later = after.promise.then(() => transactions.run(() => p.publish({ later: true })));
      });
      after.open();
      await later;
      await waitFor(() => seen.length === 1, { message: 'the later run() committed and was sent' });
      expect(seen).toEqual([{ later: true }]);
    });

    it('acknowledges a delivery only after what its handler published was confirmed or committed', async () => {
      const { service, topic } = h.unique();
      const downstream: unknown[] = [];
      let attempts = 0;
      @Controller()
      class Handler {
        constructor(private readonly publisher: MessagingPublisher) {}
        @Consume(topic, { idempotent: true })
        async handle() {
          attempts++;
          // Nobody consumes `.out` on the first attempt: the publish is refused (memory) or waits
          // in the outbox (durable); either way the outcome is not lost.
          await new MessageProducer({ topic: `${topic}.out` }, this.publisher).publish({ n: 1 });
        }
      }
      @Controller()
      class Downstream {
        @Consume(`${topic}.out`)
        handle(@Payload() body: unknown) {
          downstream.push(body);
        }
      }
      const app = await start(service, [Handler]);
      await producer(app, topic).publish({}, { messageId: 'outcome-kept' });
      await waitFor(() => attempts >= 1);
      await start(`${service}-down`, [Downstream]);
      await waitFor(() => downstream.length >= 1, {
        message: 'the outcome published once a consumer exists',
      });
      expect(downstream[0]).toEqual({ n: 1 });
    });
  });
}
