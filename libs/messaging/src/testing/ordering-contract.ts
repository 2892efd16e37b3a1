import { Controller, type INestApplication, type Type } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { MessageContext } from '../context/message-context';
import { DeadLetterService } from '../dead-letters/dead-letter.service';
import { Consume } from '../decorators/consume.decorator';
import { MessagingPublisher } from '../producer/messaging.publisher';
import type { ContractHarness } from './contract-harness';
import { waitFor } from './wait-for';

interface Keyed {
  readonly key: string;
  readonly seq: number;
}

/**
 * SPEC §5 "Per-key ordering", checked through Nest apps on the backend under test: one message of an
 * `orderingKey` at a time, in publish order, keys in parallel; a failure holds back its key only; and
 * across instances, one of them consumes while the others stand by and take over.
 */
export function describeOrderingContract(h: ContractHarness): void {
  const { unique, start, publisherOf } = h;

  describe('per-key ordering', () => {
    it('handles one message of a key at a time, in publish order, and different keys at once', async () => {
      const { service, topic } = unique();
      const log = new KeyLog();
      // The first message of key a waits until a message of key b started: only keys in parallel get on.
      let bStarted!: () => void;
      const bRuns = new Promise<void>((resolve) => (bStarted = resolve));
      @Controller()
      class Handler {
        @Consume(topic, { ordered: true, concurrency: 4 })
        async handle(@Payload() m: Keyed, @Ctx() ctx: MessageContext): Promise<void> {
          expect(ctx.orderingKey).toBe(m.key);
          log.start(m);
          if (m.key === 'b') bStarted();
          if (m.key === 'a' && m.seq === 0) await bRuns;
          for (let i = 0; i < m.seq % 4; i++) await new Promise((r) => setImmediate(r));
          log.end(m);
        }
      }
      const app = await start(service, [Handler]);
      await publishInterleaved(app, topic, ['a', 'b', 'c'], 8);
      await waitFor(() => log.ended === 24, { message: '24 messages handled' });
      log.expectInOrder(['a', 'b', 'c'], 8);
    });

    it('retries a failing message in place, holding back its key only, then dead-letters it with its attempts', async () => {
      const { service, topic } = unique();
      const events: string[] = [];
      @Controller()
      class Handler {
        @Consume(topic, {
          ordered: true,
          concurrency: 2,
          retry: { maxAttempts: 3, backoff: { initialDelayMs: 100, multiplier: 1, jitter: 0 } },
        })
        handle(@Payload() m: Keyed, @Ctx() ctx: MessageContext): void {
          if (m.key === 'a' && m.seq === 0) {
            events.push(`a0 attempt ${ctx.attempt}`);
            throw new Error('a0 always fails');
          }
          if (m.key === 'c' && m.seq === 0 && ctx.attempt === 1) {
            events.push('c0 attempt 1');
            throw new Error('c0 fails once');
          }
          events.push(`${m.key}${m.seq}`);
        }
      }
      const app = await start(service, [Handler]);
      const publisher = publisherOf(app);
      for (const [key, seq] of [
        ['a', 0],
        ['a', 1],
        ['b', 0],
        ['c', 0],
        ['c', 1],
      ] as const) {
        await publisher.publish({ topic }, { key, seq }, { orderingKey: key });
      }
      await waitFor(() => events.includes('a1') && events.includes('c1'), {
        message: 'a1 and c1 handled',
      });
      const at = (event: string) => events.indexOf(event);
      // a1 waited for a0's three attempts; b0 and c's messages did not.
      expect(at('a0 attempt 1')).toBeLessThan(at('a0 attempt 2'));
      expect(at('a0 attempt 2')).toBeLessThan(at('a0 attempt 3'));
      expect(at('a1')).toBeGreaterThan(at('a0 attempt 3'));
      expect(at('b0')).toBeLessThan(at('a0 attempt 3'));
      // c0 succeeded on its second attempt, in place: before c1.
      expect(at('c0')).toBeGreaterThan(at('c0 attempt 1'));
      expect(at('c1')).toBeGreaterThan(at('c0'));
      const deadLetters = app.get(DeadLetterService);
      await waitFor(async () => (await deadLetters.list()).length === 1, {
        message: 'a0 dead-lettered',
      });
      const [letter] = await deadLetters.list();
      expect(letter).toMatchObject({ payload: { key: 'a', seq: 0 }, attempts: 3 });
      expect(letter.firstFailedAt.getTime()).toBeLessThan(letter.lastFailedAt.getTime());
    });

    it('keeps the order across instances: one consumes, another takes over when it goes', async () => {
      const { service, topic } = unique();
      const log = new KeyLog();
      const makeHandler = (instance: string): Type => {
        @Controller()
        class Handler {
          @Consume(topic, { ordered: true, concurrency: 3 })
          async handle(@Payload() m: Keyed): Promise<void> {
            log.start(m, instance);
            for (let i = 0; i < m.seq % 3; i++) await new Promise((r) => setImmediate(r));
            log.end(m);
          }
        }
        return Handler;
      };
      const first = await start(service, [makeHandler('first')]);
      const second = await start(service, [makeHandler('second')]);
      await publishInterleaved(first, topic, ['a', 'b'], 6);
      await waitFor(() => log.ended === 12, { message: '12 messages handled' });
      const active = log.instances();
      expect(active.size).toBe(1);
      // The active instance goes: the other takes over, in order.
      const [gone, stays] = active.has('first') ? [first, second] : [second, first];
      await gone.close();
      h.forget(gone);
      await publishInterleaved(stays, topic, ['a', 'b'], 6, 6);
      await waitFor(() => log.ended === 24, { message: '24 messages handled', timeoutMs: 30_000 });
      log.expectInOrder(['a', 'b'], 12);
    }, 60_000);
  });
}

/** Publishes `count` messages of each key, interleaved (a0 b0 a1 b1 ...), one after the other. */
async function publishInterleaved(
  app: INestApplication,
  topic: string,
  keys: readonly string[],
  count: number,
  from = 0,
): Promise<void> {
  const publisher = app.get(MessagingPublisher);
  for (let seq = from; seq < from + count; seq++) {
    for (const key of keys) await publisher.publish({ topic }, { key, seq }, { orderingKey: key });
  }
}

/** What an ordered handler did: starts and ends per key, and any overlap within a key. */
class KeyLog {
  private readonly started = new Map<string, number[]>();
  private readonly running = new Map<string, number>();
  private readonly seenBy = new Set<string>();
  overlaps = 0;
  ended = 0;

  start(m: Keyed, instance = 'this'): void {
    this.seenBy.add(instance);
    if ((this.running.get(m.key) ?? 0) > 0) this.overlaps++;
    this.running.set(m.key, (this.running.get(m.key) ?? 0) + 1);
    this.started.set(m.key, [...(this.started.get(m.key) ?? []), m.seq]);
  }

  end(m: Keyed): void {
    this.running.set(m.key, (this.running.get(m.key) ?? 0) - 1);
    this.ended++;
  }

  instances(): Set<string> {
    return new Set(this.seenBy);
  }

  /** Every key's messages started in publish order (0..count-1), never two of a key at once. */
  expectInOrder(keys: readonly string[], count: number): void {
    const inOrder = Array.from({ length: count }, (_, i) => i);
    for (const key of keys)
      expect({ key, seqs: this.started.get(key) }).toEqual({ key, seqs: inOrder });
    expect(this.overlaps).toBe(0);
  }
}
