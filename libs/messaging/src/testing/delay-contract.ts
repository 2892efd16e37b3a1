import { Controller, type INestApplication, type Type } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { MessageContext } from '../context/message-context';
import { Consume } from '../decorators/consume.decorator';
import { UnroutableError } from '../errors/messaging.errors';
import type { ContractHarness } from './contract-harness';
import { waitFor } from './wait-for';

/** How late a delayed message may arrive: the promise of every backend is "within a second". */
const LATE_MS = 1_000;

/** `Date.now()` may read 1 ms short of a delay a broker held to the millisecond (it truncates). */
const CLOCK_SLACK_MS = 1;

/**
 * The delay half of the backend contract: a delayed publish arrives after its delay and less than a
 * second late on every service of its topic, a short delay is never held back by a long one, a
 * delayed publish to a topic nobody consumes is refused like any publish, a delay of days is held,
 * and a retry waits the delay the core decided (and logged), not a rounded one.
 */
export function describeDelayContract(h: ContractHarness): void {
  const { unique, start, publisherOf } = h;

  /**
   * A handler of `topic` (one at a time) that records when each message arrived, by payload; it
   * checks that a delayed message comes as a first attempt of its topic.
   */
  const recorder = (topic: string, seen: Map<string, number>): Type => {
    @Controller()
    class Recorder {
      @Consume(topic, { concurrency: 1 })
      handle(@Payload() payload: { id: string }, @Ctx() ctx: MessageContext): void {
        if (ctx.topic === topic && ctx.attempt === 1) seen.set(payload.id, Date.now());
        else seen.set(payload.id, Number.NaN);
      }
    }
    return Recorder;
  };

  it('delivers a delayed publish after its delay, less than a second late, to every service', async () => {
    const { service, topic } = unique();
    const a = new Map<string, number>();
    const b = new Map<string, number>();
    const app = await start(service, [recorder(topic, a)]);
    await start(`${service}-other`, [recorder(topic, b)]);
    const publisher = publisherOf(app);
    const sentAt = Date.now();
    await publisher.publish({ topic }, { id: 'long' }, { delayMs: 2_500 });
    const shortAt = Date.now();
    await publisher.publish({ topic }, { id: 'short' }, { delayMs: 700 });
    await waitFor(() => a.size === 2 && b.size === 2, { timeoutMs: 2_500 + LATE_MS + 2_000 });
    for (const seen of [a, b]) {
      const long = (seen.get('long') as number) - sentAt;
      const short = (seen.get('short') as number) - shortAt;
      expect(long).toBeGreaterThanOrEqual(2_500 - CLOCK_SLACK_MS);
      expect(long).toBeLessThan(2_500 + LATE_MS);
      expect(short).toBeGreaterThanOrEqual(700 - CLOCK_SLACK_MS);
      expect(short).toBeLessThan(700 + LATE_MS);
    }
  });

  it('refuses a delayed publish to a topic nobody consumes, unless the producer allows it', async () => {
    const { service, topic } = unique();
    const seen = new Map<string, number>();
    const app = await start(service, [recorder(topic, seen)]);
    const publisher = publisherOf(app);
    await expect(
      publisher.publish({ topic: `${topic}.nobody` }, {}, { delayMs: 300 }),
    ).rejects.toBeInstanceOf(UnroutableError);
    await expect(
      publisher.publish({ topic: `${topic}.nobody` }, {}, { delayMs: 300, allowUnroutable: true }),
    ).resolves.toEqual(expect.any(String));
  });

  it('accepts a delay of days and holds it', async () => {
    const { service, topic } = unique();
    const seen = new Map<string, number>();
    const app: INestApplication = await start(service, [recorder(topic, seen)]);
    const publisher = publisherOf(app);
    await publisher.publish({ topic }, { id: 'in-3-days' }, { delayMs: 3 * 86_400_000 });
    // Published after it and handled one at a time: once this one is handled, the delayed one
    // was received first (and parked) where a backend receives delayed messages at once.
    await publisher.publish({ topic }, { id: 'now' });
    await waitFor(() => seen.has('now'));
    expect([...seen.keys()]).toEqual(['now']);
  });

  it('retries after the delay the core decided and logs, not a rounded one', async () => {
    const { service, topic } = unique();
    const calls: number[] = [];
    const retry = {
      maxAttempts: 2,
      backoff: { initialDelayMs: 1_250, multiplier: 1, maxDelayMs: 1_250, jitter: 0 },
    };
    @Controller()
    class Handler {
      @Consume(topic, { retry })
      handle(@Ctx() ctx: MessageContext): void {
        calls.push(Date.now());
        if (ctx.attempt === 1) throw new Error('once');
      }
    }
    const app = await start(service, [Handler]);
    await publisherOf(app).publish({ topic }, {});
    await waitFor(() => calls.length === 2, { timeoutMs: 5_000 });
    // The core logs "retrying in 1250 ms"; a broker that rounds to a tier (1.5 s) waits 250 ms more.
    expect(calls[1] - calls[0]).toBeGreaterThanOrEqual(1_250 - CLOCK_SLACK_MS);
    expect(calls[1] - calls[0]).toBeLessThan(1_250 + 200);
  });
}
