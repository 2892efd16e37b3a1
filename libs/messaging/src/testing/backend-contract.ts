import { randomUUID } from 'node:crypto';
import {
  Controller,
  type INestApplication,
  type Type,
  UsePipes,
  ValidationPipe,
} from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { IsInt, IsString, Min } from 'class-validator';
import type { BrokerBackend } from '../backend/broker-backend.interface';
import { MessageContext } from '../context/message-context';
import { DeadLetterService } from '../dead-letters/dead-letter.service';
import { Consume } from '../decorators/consume.decorator';
import {
  RemoteHandlerError,
  RequestTimeoutError,
  UnrecoverableError,
  UnroutableError,
} from '../errors/messaging.errors';
import type { MessagingModuleOptions } from '../module/messaging-options';
import { MessagingModule } from '../module/messaging.module';
import { MessagingPublisher } from '../producer/messaging.publisher';
import { MessagingServer } from '../server/messaging.server';
import { gate, waitFor } from './wait-for';

/** Options of the contract suite. */
export interface BackendContractOptions {
  /** Prefix of every service name the suite uses, so a spec can clean up after it. */
  servicePrefix?: string;
}

class ChargeDto {
  @IsString()
  orderId!: string;

  @IsInt()
  @Min(1)
  amount!: number;
}

const FAST_RETRY = {
  maxAttempts: 3,
  backoff: { initialDelayMs: 100, multiplier: 2, maxDelayMs: 1000, jitter: 0 },
};

/**
 * The behaviour every `BrokerBackend` must have, checked through real Nest apps built with
 * `@nestjs/testing`. A backend's spec calls it with a factory; each app gets its own backend
 * instance, so instances of one service compete and services fan out as they would across processes.
 *
 * @example
 * runBackendContract('memory', () => new InMemoryBackend({ broker }));
 */
export function runBackendContract(
  name: string,
  createBackend: () => BrokerBackend,
  options: BackendContractOptions = {},
): void {
  describe(`BrokerBackend contract: ${name}`, () => {
    const runId = randomUUID().slice(0, 8);
    const prefix = options.servicePrefix ?? 'contract';
    let apps: INestApplication[] = [];
    let counter = 0;

    /** A service name (consumer group) and topic prefix unique to this test. */
    const unique = (): { service: string; topic: string } => {
      counter++;
      return { service: `${prefix}-${runId}-${counter}`, topic: `ct${runId}.t${counter}` };
    };

    const start = async (
      service: string,
      controllers: Type[],
      moduleOptions: Partial<MessagingModuleOptions> = {},
    ): Promise<INestApplication> => {
      const moduleRef = await Test.createTestingModule({
        imports: [MessagingModule.forRoot({ backend: createBackend(), service, ...moduleOptions })],
        controllers,
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      app.connectMicroservice({ strategy: app.get(MessagingServer) }, { inheritAppConfig: true });
      apps.push(app);
      await app.startAllMicroservices();
      await app.init();
      return app;
    };

    const publisherOf = (app: INestApplication): MessagingPublisher => app.get(MessagingPublisher);

    afterEach(async () => {
      const open = apps;
      apps = [];
      await Promise.all(open.map((app) => app.close()));
    });

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
      expect(calls[1].at - calls[0].at).toBeGreaterThanOrEqual(100);
      expect(calls[2].at - calls[1].at).toBeGreaterThanOrEqual(200);
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

    it('answers requests with the return value, the handler error, or a timeout', async () => {
      const { service, topic } = unique();
      const slow = gate();
      @Controller()
      class Handler {
        @Consume(`${topic}.sum`)
        sum(@Payload() numbers: number[]): number {
          return numbers.reduce((a, b) => a + b, 0);
        }

        @Consume(`${topic}.fail`, { retry: FAST_RETRY })
        fail(): never {
          throw new Error('cannot compute');
        }

        @Consume(`${topic}.slow`)
        async slow(): Promise<string> {
          await slow.promise;
          return 'late';
        }
      }
      const app = await start(service, [Handler]);
      const publisher = publisherOf(app);
      await expect(publisher.request({ topic: `${topic}.sum` }, [1, 2, 3])).resolves.toBe(6);
      await expect(publisher.request({ topic: `${topic}.fail` }, {})).rejects.toMatchObject({
        constructor: RemoteHandlerError,
        message: 'cannot compute',
      });
      await expect(
        publisher.request({ topic: `${topic}.slow` }, {}, { timeoutMs: 200 }),
      ).rejects.toBeInstanceOf(RequestTimeoutError);
      slow.open();
      await expect(publisher.request({ topic: `${topic}.nobody` }, {})).rejects.toBeInstanceOf(
        UnroutableError,
      );
      expect(await app.get(DeadLetterService).list()).toEqual([]);
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
      await Promise.all(
        Array.from({ length: 8 }, (_, i) => publisherOf(app).publish({ topic }, { i })),
      );
      await waitFor(() => done === 8);
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
      apps = apps.filter((a) => a !== first);
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
  });
}
