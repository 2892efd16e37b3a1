import { randomUUID } from 'node:crypto';
import { Controller, UsePipes, ValidationPipe } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { IsInt, IsString, Min } from 'class-validator';
import { MessageContext } from '../context/message-context';
import { DeadLetterService } from '../dead-letters/dead-letter.service';
import { Consume } from '../decorators/consume.decorator';
import { BackendClosedError, UnrecoverableError } from '../errors/messaging.errors';
import { type ContractHarness, FAST_RETRY } from './contract-harness';
import { waitFor } from './wait-for';
import type { BrokerBackend } from '../backend/broker-backend.interface';
import { MESSAGING_BACKEND } from '../messaging.constants';

const CLAIMED_ATTEMPT = 'x-messaging-attempt';

class ChargeDto {
  @IsString()
  orderId!: string;

  @IsInt()
  @Min(1)
  amount!: number;
}

/**
 * The failure half of the backend contract: retries with their attempts and delays, dead letters
 * with their metadata, `UnrecoverableError`, validation failures, malformed bodies, replay, and
 * purging a selection.
 */
export function describeFailureContract(h: ContractHarness): void {
  const { unique, start, publisherOf, createBackend, forget } = h;

  /**
   * Starts an app whose handler of `{ n }` throws `error(n)` until `state.fixed`, publishes n = 0 to
   * `count - 1` and waits for their dead letters; `state.handled` is what it handled once fixed.
   */
  async function numberedDeadLetters(count: number, error: (n: number) => string) {
    const { service, topic } = unique();
    const state = { fixed: false, handled: [] as number[] };
    @Controller()
    class Handler {
      @Consume(topic, { retry: false })
      handle(@Payload() body: { n: number }): void {
        if (!state.fixed) throw new Error(error(body.n));
        state.handled.push(body.n);
      }
    }
    const app = await start(service, [Handler]);
    const deadLetters = app.get(DeadLetterService);
    for (let n = 0; n < count; n++) await publisherOf(app).publish({ topic }, { n });
    await waitFor(async () => (await deadLetters.list()).length === count);
    return { service, app, deadLetters, backend: app.get<BrokerBackend>(MESSAGING_BACKEND), state };
  }

  it('retries a failing handler with attempts 1, 2, 3 and waits at least the backoff', async () => {
    const { service, topic } = unique();
    const calls: Array<{ attempt: number; at: number }> = [];
    @Controller()
    class Handler {
      @Consume(topic, { retry: FAST_RETRY })
      handle(@Ctx() ctx: MessageContext): void {
        calls.push({ attempt: ctx.attempt, at: Date.now() });
        if (ctx.attempt < 3) throw new Error(`transient failure ${ctx.attempt}`);
      }
    }
    const app = await start(service, [Handler]);
    await publisherOf(app).publish({ topic }, { n: 1 });
    await waitFor(() => calls.length === 3);
    expect(calls.map((c) => c.attempt)).toEqual([1, 2, 3]);
    // Date.now() may read 1 ms short of a timer's delay (it truncates; timers round).
    expect(calls[1].at - calls[0].at).toBeGreaterThanOrEqual(99);
    expect(calls[2].at - calls[1].at).toBeGreaterThanOrEqual(199);
    expect(await app.get(DeadLetterService).list()).toEqual([]);
  });

  it('dead-letters a poison message after exactly maxAttempts, with its metadata', async () => {
    const { service, topic } = unique();
    let calls = 0;
    @Controller()
    class Handler {
      @Consume(topic, { retry: FAST_RETRY })
      handle(): void {
        calls++;
        throw new Error('card processor exploded');
      }
    }
    const app = await start(service, [Handler]);
    const deadLetters = app.get(DeadLetterService);
    const messageId = await publisherOf(app).publish(
      { topic },
      { poison: true },
      { headers: { origin: 'test' } },
    );
    await waitFor(async () => (await deadLetters.list()).length === 1);
    const [letter] = await deadLetters.list();
    expect(calls).toBe(3);
    expect(letter).toMatchObject({
      messageId,
      topic,
      queue: `${service}.${topic}`,
      reason: 'max-attempts',
      error: 'card processor exploded',
      errorClass: 'Error',
      attempts: 3,
      payload: { poison: true },
    });
    expect(letter.headers.origin).toBe('test');
    expect(JSON.parse(letter.body.toString())).toEqual({ poison: true });
    expect(letter.firstFailedAt.getTime()).toBeLessThanOrEqual(letter.lastFailedAt.getTime());
    expect(letter.lastFailedAt.getTime() - letter.firstFailedAt.getTime()).toBeGreaterThanOrEqual(
      300,
    );
  });

  it('sends UnrecoverableError and validation failures to the dead-letter queue without retry', async () => {
    const { service, topic } = unique();
    let unrecoverable = 0;
    let validated = 0;
    @Controller()
    class Handler {
      @Consume(`${topic}.unrecoverable`, { retry: FAST_RETRY })
      fail(): void {
        unrecoverable++;
        throw new UnrecoverableError('order does not exist');
      }

      @Consume(`${topic}.charge`, { retry: FAST_RETRY })
      @UsePipes(
        new ValidationPipe({ transform: true, whitelist: true, forbidNonWhitelisted: true }),
      )
      charge(@Payload() dto: ChargeDto): void {
        expect(dto).toBeInstanceOf(ChargeDto);
        validated++;
      }
    }
    const app = await start(service, [Handler]);
    const deadLetters = app.get(DeadLetterService);
    await publisherOf(app).publish({ topic: `${topic}.unrecoverable` }, {});
    await publisherOf(app).publish({ topic: `${topic}.charge` }, { orderId: 'o1', amount: -5 });
    await publisherOf(app).publish({ topic: `${topic}.charge` }, { orderId: 'o2', amount: 5 });
    await waitFor(async () => (await deadLetters.list()).length === 2 && validated === 1);
    const letters = await deadLetters.list();
    const byReason = Object.fromEntries(letters.map((l) => [l.reason, l]));
    expect(unrecoverable).toBe(1);
    expect(byReason.unrecoverable).toMatchObject({
      attempts: 1,
      errorClass: 'UnrecoverableError',
      error: 'order does not exist',
    });
    expect(byReason.validation).toMatchObject({ attempts: 1, errorClass: 'BadRequestException' });
    expect(byReason.validation.error).toContain('amount must not be less than 1');
  });

  it('dead-letters malformed bodies with the reason and never lets them reach the handler', async () => {
    const { service, topic } = unique();
    const seen: unknown[] = [];
    @Controller()
    class Handler {
      @Consume(topic, { retry: FAST_RETRY })
      handle(@Payload() payload: unknown): void {
        seen.push(payload);
      }
    }
    const app = await start(service, [Handler]);
    const backend = createBackend();
    await backend.connect();
    try {
      const raw = (body: string, contentType?: string) =>
        backend.publish(
          {
            topic,
            body: Buffer.from(body),
            headers: {},
            messageId: randomUUID(),
            contentType,
            timestamp: Date.now(),
          },
          { mandatory: true },
        );
      await raw('{"orderId": ', 'application/json');
      await raw('{"__proto__": {"polluted": true}}', 'application/json');
      await raw('{"constructor": {"prototype": {"polluted": true}}}');
      await raw(`${'['.repeat(5000)}${']'.repeat(5000)}`, 'application/json');
      await raw('plain text from a shell script');
      await waitFor(
        async () => (await app.get(DeadLetterService).list()).length === 4 && seen.length === 1,
      );
    } finally {
      await backend.close();
    }
    const letters = await app.get(DeadLetterService).list();
    expect(letters.every((l) => l.reason === 'malformed' && l.attempts === 1)).toBe(true);
    const errors = letters.map((l) => l.error).join('\n');
    for (const reason of [
      'not valid JSON',
      '"__proto__"',
      '"constructor.prototype"',
      'nests deeper',
    ]) {
      expect(errors).toContain(reason);
    }
    expect(seen).toEqual(['plain text from a shell script']);
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
  });

  it('believes no attempt or topic a sender claims in the library headers', async () => {
    const { service, topic } = unique();
    const seen: Array<{ attempt: number; topic: string; claimed: unknown }> = [];
    @Controller()
    class Handler {
      @Consume(topic, { retry: FAST_RETRY })
      handle(@Ctx() ctx: MessageContext): void {
        seen.push({
          attempt: ctx.attempt,
          topic: ctx.topic,
          claimed: ctx.headers[CLAIMED_ATTEMPT],
        });
        throw new Error('always fails');
      }
    }
    const app = await start(service, [Handler]);
    const forged = { [CLAIMED_ATTEMPT]: 999, 'x-messaging-topic': 'admin.delete', tenant: 'acme' };
    // Through the library's own publish, which drops the reserved names...
    await publisherOf(app).publish({ topic }, { via: 'publish' }, { headers: forged });
    // ...and from a foreign producer straight through the backend, which keeps them.
    const backend = app.get<BrokerBackend>(MESSAGING_BACKEND);
    await backend.publish(
      {
        topic,
        body: Buffer.from('{"via":"foreign"}'),
        contentType: 'application/json',
        headers: forged,
        messageId: randomUUID(),
        correlationId: randomUUID(),
        timestamp: Date.now(),
      },
      { mandatory: true },
    );
    const deadLetters = app.get(DeadLetterService);
    await waitFor(async () => (await deadLetters.list()).length === 2);
    // Each ran its three attempts, under its real topic.
    expect(seen.map((s) => s.attempt).sort()).toEqual([1, 1, 2, 2, 3, 3]);
    expect(new Set(seen.map((s) => s.topic))).toEqual(new Set([topic]));
    // The handler still sees what the foreign sender wrote; the library's publish sent none of it.
    const firstClaims = seen.filter((s) => s.attempt === 1).map((s) => s.claimed);
    expect(new Set(firstClaims)).toEqual(new Set([999, undefined]));
    for (const letter of await deadLetters.list()) {
      expect(letter).toMatchObject({ topic, attempts: 3 });
    }
  });

  it('lists dead letters in pages and in order, alongside other listings and replays', async () => {
    const { deadLetters, state } = await numberedDeadLetters(6, (n) => `failed ${n}`);
    const { handled } = state;
    const [third] = (await deadLetters.list()).filter((l) => numbers([l])[0] === 3);
    state.fixed = true;
    const [all, again, page, replayed] = await Promise.all([
      deadLetters.list(),
      deadLetters.list(),
      deadLetters.list({ offset: 2, limit: 2 }),
      deadLetters.replay(third.id),
    ]);
    expect(numbers(all)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(numbers(again)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(numbers(page)).toEqual([2, 3]);
    expect(replayed).toBe(true);
    await waitFor(() => handled.length === 1);
    expect(handled).toEqual([3]);
    expect(numbers(await deadLetters.list())).toEqual([0, 1, 2, 4, 5]);
    expect(numbers(await deadLetters.list({ offset: 4 }))).toEqual([5]);
  });

  it('replays a dead letter back to its handler as a first attempt', async () => {
    const { service, topic } = unique();
    let broken = true;
    const handled: number[] = [];
    @Controller()
    class Handler {
      @Consume(topic, { retry: false })
      handle(@Ctx() ctx: MessageContext): void {
        if (broken) throw new Error('downstream is down');
        handled.push(ctx.attempt);
      }
    }
    const app = await start(service, [Handler]);
    const deadLetters = app.get(DeadLetterService);
    await publisherOf(app).publish({ topic }, { order: 1 });
    await publisherOf(app).publish({ topic }, { order: 2 });
    await waitFor(async () => (await deadLetters.list()).length === 2);
    broken = false;
    const [first] = await deadLetters.list();
    expect(await deadLetters.replay(first.id)).toBe(true);
    expect(await deadLetters.replay('no-such-id')).toBe(false);
    await waitFor(() => handled.length === 1);
    expect(handled).toEqual([1]);
    expect((await deadLetters.list()).map((l) => l.id)).not.toContain(first.id);
    expect(await deadLetters.replayAll()).toBe(1);
    await waitFor(() => handled.length === 2);
    expect(await deadLetters.list()).toEqual([]);
  });

  it('scans and replays a selection', async () => {
    const { service, backend, deadLetters, state } = await numberedDeadLetters(
      5,
      (n) => `failed ${n}`,
    );
    const { handled } = state;
    const seen: string[] = [];
    await backend.deadLetters.scan(service, (letter) => {
      seen.push(letter.error);
      return seen.length < 3; // seen enough: no more calls
    });
    expect(seen).toEqual(['failed 0', 'failed 1', 'failed 2']);
    state.fixed = true;
    const outcome = await backend.deadLetters.replayWhere(service, (letter) =>
      ['failed 1', 'failed 3'].includes(letter.error),
    );
    expect(outcome.replayed).toHaveLength(2);
    expect(outcome.failed).toEqual([]);
    await waitFor(() => handled.length === 2);
    expect(handled.sort()).toEqual([1, 3]);
    const left = await deadLetters.list();
    expect(left.map((l) => l.error)).toEqual(['failed 0', 'failed 2', 'failed 4']);
  });

  it('purges the dead letters a selection picks and leaves the others, in order, to replay', async () => {
    const { service, app, backend, deadLetters, state } = await numberedDeadLetters(6, (n) =>
      n % 2 === 0 ? 'out of stock' : 'card declined',
    );
    const { handled } = state;
    const before = await deadLetters.list();
    const outOfStock = before.filter((l) => l.error === 'out of stock').map((l) => l.id);
    const declined = before.filter((l) => l.error === 'card declined').map((l) => l.id);
    expect(outOfStock).toHaveLength(3);
    const picksOutOfStock = (letter: { error: string }): boolean => letter.error === 'out of stock';

    const { purged } = await deadLetters.purgeWhere(picksOutOfStock);
    expect([...purged].sort()).toEqual([...outOfStock].sort());
    const left = await deadLetters.list();
    expect(left.map((l) => l.id)).toEqual(declined);
    expect(numbers(left)).toEqual([1, 3, 5]);
    expect(await backend.deadLetters.purgeWhere(service, picksOutOfStock)).toEqual({ purged: [] });

    state.fixed = true;
    expect(await deadLetters.replayAll()).toBe(3);
    await waitFor(() => handled.length === 3);
    expect(handled.sort()).toEqual([1, 3, 5]);
    expect(await deadLetters.list()).toEqual([]);

    await app.close();
    forget(app);
    await expect(backend.deadLetters.purgeWhere(service, () => true)).rejects.toBeInstanceOf(
      BackendClosedError,
    );
  });
}

/** The `n` of each dead letter of `numberedDeadLetters`, in order. */
function numbers(letters: ReadonlyArray<{ payload: unknown }>): number[] {
  return letters.map((l) => (l.payload as { n: number }).n);
}
