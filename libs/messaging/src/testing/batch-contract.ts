import { Controller, UsePipes, ValidationPipe } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { IsInt, Min } from 'class-validator';
import type { BatchContext } from '../context/batch-context';
import { DeadLetterService } from '../dead-letters/dead-letter.service';
import { Consume } from '../decorators/consume.decorator';
import { BatchFailure } from '../errors/messaging.errors';
import { type ContractHarness, FAST_RETRY } from './contract-harness';
import { waitFor } from './wait-for';

class Item {
  @IsInt()
  @Min(1)
  n!: number;
}

/** One call of a batch handler: each item's `n` and attempt, in the order received. */
type Call = Array<{ n: number; attempt: number }>;

function record(calls: Call[], items: Array<{ n: number }>, ctx: BatchContext): void {
  calls.push(items.map((item, i) => ({ n: item.n, attempt: ctx.items[i].attempt })));
}

/** Each `n`'s attempts, in the order its handler saw them. */
function attemptsByItem(calls: Call[]): Map<number, number[]> {
  const byItem = new Map<number, number[]>();
  for (const item of calls.flat())
    byItem.set(item.n, [...(byItem.get(item.n) ?? []), item.attempt]);
  return byItem;
}

/**
 * Batch consumption (`@Consume(topic, { batch })`, SPEC §5) on the backend under test: batches no
 * larger than `size`, every item acknowledged, each item retried and dead-lettered on its own,
 * `BatchFailure`, and items a pipe refuses.
 */
export function describeBatchContract(h: ContractHarness): void {
  const { unique, start, publisherOf } = h;
  const publishAll = (
    app: Parameters<ContractHarness['publisherOf']>[0],
    topic: string,
    ns: number[],
  ) => Promise.all(ns.map((n) => publisherOf(app).publish({ topic }, { n })));

  describe('batch consumption', () => {
    it('hands over arrays of at most size payloads and acknowledges every message', async () => {
      const { service, topic } = unique();
      const calls: Call[] = [];
      @Controller()
      class Handler {
        // One batch at a time: a message left unacknowledged would hold the only room for the next.
        @Consume(topic, { batch: { size: 10, maxWaitMs: 30 }, concurrency: 1 })
        handle(@Payload() items: Array<{ n: number }>, @Ctx() ctx: BatchContext): void {
          expect(Array.isArray(items)).toBe(true);
          record(calls, items, ctx);
        }
      }
      const app = await start(service, [Handler]);
      const ns = Array.from({ length: 45 }, (_, i) => i + 1);
      for (let i = 0; i < ns.length; i += 15) await publishAll(app, topic, ns.slice(i, i + 15));
      await waitFor(() => calls.flat().length >= 45, { message: '45 items handled' });
      expect(calls.every((c) => c.length >= 1 && c.length <= 10)).toBe(true);
      // Fewer calls than messages: they did arrive in batches.
      expect(calls.length).toBeLessThan(45);
      expect(
        calls
          .flat()
          .map((i) => i.n)
          .sort((a, b) => a - b),
      ).toEqual(ns);
      expect(calls.flat().every((i) => i.attempt === 1)).toBe(true);
      expect(await app.get(DeadLetterService).list()).toEqual([]);
    });

    it('on a throw, retries and dead-letters each item with its own attempt count', async () => {
      const { service, topic } = unique();
      const calls: Call[] = [];
      @Controller()
      class Handler {
        @Consume(topic, { batch: { size: 5, maxWaitMs: 20 }, retry: FAST_RETRY })
        handle(@Payload() items: Array<{ n: number }>, @Ctx() ctx: BatchContext): void {
          record(calls, items, ctx);
          throw new Error('warehouse down');
        }
      }
      const app = await start(service, [Handler]);
      await publishAll(app, topic, [1]);
      // The second message arrives while the first waits for its retry: their attempts differ.
      await waitFor(() => calls.length === 1);
      await publishAll(app, topic, [2]);
      const deadLetters = app.get(DeadLetterService);
      await waitFor(async () => (await deadLetters.list()).length === 2, {
        message: '2 dead letters',
      });
      const byItem = attemptsByItem(calls);
      expect(byItem.get(1)).toEqual([1, 2, 3]);
      expect(byItem.get(2)).toEqual([1, 2, 3]);
      const letters = await deadLetters.list();
      expect(letters.map((l) => (l.payload as { n: number }).n).sort()).toEqual([1, 2]);
      for (const letter of letters) {
        expect(letter).toMatchObject({
          attempts: 3,
          reason: 'max-attempts',
          error: 'warehouse down',
        });
      }
    });

    it('with BatchFailure, fails only the listed items and acknowledges the others', async () => {
      const { service, topic } = unique();
      const calls: Call[] = [];
      @Controller()
      class Handler {
        @Consume(topic, { batch: { size: 4, maxWaitMs: 300 }, retry: FAST_RETRY })
        handle(@Payload() items: Array<{ n: number }>, @Ctx() ctx: BatchContext): void {
          record(calls, items, ctx);
          const failures = items.flatMap((item, index) =>
            item.n === 3 ? [{ index, error: new Error(`item ${item.n} refused`) }] : [],
          );
          if (failures.length > 0) throw new BatchFailure(failures);
        }
      }
      const app = await start(service, [Handler]);
      await publishAll(app, topic, [1, 2, 3, 4]);
      const deadLetters = app.get(DeadLetterService);
      await waitFor(async () => (await deadLetters.list()).length === 1, {
        message: '1 dead letter',
      });
      const byItem = attemptsByItem(calls);
      expect(byItem.get(3)).toEqual([1, 2, 3]);
      for (const n of [1, 2, 4]) expect(byItem.get(n)).toEqual([1]);
      const [letter] = await deadLetters.list();
      expect(letter).toMatchObject({
        payload: { n: 3 },
        attempts: 3,
        reason: 'max-attempts',
        error: 'item 3 refused',
      });
    });

    it('dead-letters an item its pipes refuse, alone, and hands the others over', async () => {
      const { service, topic } = unique();
      const received: unknown[] = [];
      @Controller()
      class Handler {
        @Consume(topic, { batch: { size: 3, maxWaitMs: 2_000, itemType: Item }, retry: FAST_RETRY })
        @UsePipes(new ValidationPipe({ transform: true }))
        handle(@Payload() items: Item[]): void {
          received.push(...items);
        }
      }
      const app = await start(service, [Handler]);
      await publishAll(app, topic, [1, -5, 2]);
      const deadLetters = app.get(DeadLetterService);
      await waitFor(async () => (await deadLetters.list()).length === 1 && received.length === 2);
      expect(received.every((item) => item instanceof Item)).toBe(true);
      expect(received.map((item) => (item as Item).n).sort()).toEqual([1, 2]);
      const [letter] = await deadLetters.list();
      expect(letter).toMatchObject({ payload: { n: -5 }, attempts: 1, reason: 'validation' });
      expect(letter.error).toContain('n must not be less than 1');
    });
  });
}
