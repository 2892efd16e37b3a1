import {
  type ArgumentsHost,
  Catch,
  type CallHandler,
  type CanActivate,
  Controller,
  type ExecutionContext,
  Injectable,
  type INestApplication,
  Module,
  type NestInterceptor,
  type Type,
  UseFilters,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { type ExceptionFilter } from '@nestjs/common';
import { Ctx, Payload, Server } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { lastValueFrom, type Observable, of, tap } from 'rxjs';
import {
  AmqpBackend,
  Consume,
  DeadLetterService,
  InMemoryBackend,
  InMemoryBroker,
  MessageContext,
  MessageProducer,
  MessagingClient,
  MessagingConfigError,
  MessagingHealthService,
  MessagingModule,
  type MessagingModuleOptions,
  MessagingPublisher,
  MessagingServer,
  Producer,
  UnrecoverableError,
} from '@app/messaging';
import { gate, waitFor } from '@app/messaging/testing';

const broker = new InMemoryBroker();
let seq = 0;
const uniqueTopic = (): string => `nest${++seq}.${Date.now()}`;

async function startApp(
  controllers: Type[],
  providers: Type[] = [],
  options: Partial<MessagingModuleOptions> = {},
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      MessagingModule.forRoot({
        service: `nest-${++seq}`,
        backend: new InMemoryBackend({ broker }),
        ...options,
      }),
    ],
    controllers,
    providers,
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  app.connectMicroservice({ strategy: app.get(MessagingServer) }, { inheritAppConfig: true });
  await app.startAllMicroservices();
  await app.init();
  return app;
}

describe('MessagingModule in a Nest app (in-memory backend)', () => {
  const apps: INestApplication[] = [];
  const track = (app: INestApplication): INestApplication => (apps.push(app), app);
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });

  it('runs guards, interceptors and exception filters around @Consume handlers', async () => {
    const topic = uniqueTopic();
    const events: string[] = [];

    @Injectable()
    class TenantGuard implements CanActivate {
      canActivate(context: ExecutionContext): boolean {
        const ctx = context.switchToRpc().getContext<MessageContext>();
        events.push(`guard:${context.getType()}:${ctx instanceof MessageContext}`);
        return ctx.headers.tenant === 'acme';
      }
    }

    @Injectable()
    class TimingInterceptor implements NestInterceptor {
      intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
        events.push('before');
        return next.handle().pipe(tap(() => events.push('after')));
      }
    }

    class KnownGlitch extends Error {}

    @Catch(KnownGlitch)
    class GlitchFilter implements ExceptionFilter<KnownGlitch> {
      catch(error: KnownGlitch, _host: ArgumentsHost): Observable<unknown> {
        events.push(`filtered:${error.message}`);
        return of('recovered');
      }
    }

    class OtherGlitch extends Error {}

    @Catch(OtherGlitch)
    class OtherGlitchFilter implements ExceptionFilter<OtherGlitch> {
      catch(error: OtherGlitch): Observable<unknown> {
        events.push(`filtered-above:${error.message}`);
        return of('recovered');
      }
    }

    @Catch()
    class HttpOnlyFilter implements ExceptionFilter {
      catch(): never {
        // A class-level filter written for HTTP must never see message errors.
        events.push('class-filter');
        throw new Error('HTTP filter used on a message');
      }
    }

    @Controller()
    @UseGuards(TenantGuard)
    @UseFilters(HttpOnlyFilter)
    class Handler {
      @UseFilters(OtherGlitchFilter)
      @Consume(topic, { retry: false })
      @UseInterceptors(TimingInterceptor)
      @UseFilters(GlitchFilter)
      handle(@Payload() payload: { glitch?: boolean; other?: boolean }): void {
        events.push('handler');
        if (payload.glitch) throw new KnownGlitch('ignored');
        if (payload.other) throw new OtherGlitch('also ignored');
      }
    }

    const app = track(await startApp([Handler], [TenantGuard, TimingInterceptor]));
    const deadLetters = app.get(DeadLetterService);
    const client = app.get(MessagingClient);
    await lastValueFrom(client.emit(topic, { glitch: false }), { defaultValue: undefined }).catch(
      () => undefined,
    );
    // The client cannot set headers, so the tenant's messages go through the publisher.
    const publisher = app.get(MessagingPublisher);
    await publisher.publish({ topic }, { glitch: false }, { headers: { tenant: 'acme' } });
    await waitFor(() => events.includes('after'));
    await publisher.publish({ topic }, { glitch: true }, { headers: { tenant: 'acme' } });
    await waitFor(() => events.includes('filtered:ignored'));
    await publisher.publish({ topic }, { other: true }, { headers: { tenant: 'acme' } });
    await waitFor(() => events.includes('filtered-above:also ignored'));

    // The message without the tenant header was refused by the guard and dead-lettered (retry: false).
    await waitFor(async () => (await deadLetters.list()).length === 1);
    const [denied] = await deadLetters.list();
    expect(denied).toMatchObject({
      error: 'Forbidden resource',
      reason: 'unrecoverable',
      attempts: 1,
    });
    expect(events.filter((e) => e === 'handler')).toHaveLength(3);
    expect(events).toContain('guard:rpc:true');
    expect(events).not.toContain('class-filter');
    // The filtered failure counts as handled: nothing else was dead-lettered.
    expect(await deadLetters.list()).toHaveLength(1);
  });

  it('injects @Producer on constructor parameters and properties, and sends to named queues', async () => {
    const topic = uniqueTopic();
    const queue = `plain-queue-${seq}-${Date.now()}`;
    const received: unknown[] = [];

    @Injectable()
    class Orders {
      @Producer({ queue }) readonly toQueue!: MessageProducer<string>;
      constructor(@Producer(topic) readonly created: MessageProducer<{ id: number }>) {}
    }

    @Controller()
    class Handler {
      @Consume(topic)
      onTopic(@Payload() payload: { id: number }): void {
        received.push(payload);
      }

      @Consume({ queue })
      onQueue(@Payload() text: string, @Ctx() ctx: MessageContext): void {
        received.push(`${text} from ${ctx.queue}`);
      }
    }

    const app = track(await startApp([Handler], [Orders]));
    const orders = app.get(Orders);
    expect(orders.created).toBeInstanceOf(MessageProducer);
    expect(orders.created.target).toEqual({ topic });
    await orders.created.publish({ id: 1 });
    await orders.toQueue.publish('hello');
    await waitFor(() => received.length === 2);
    expect(received).toEqual(expect.arrayContaining([{ id: 1 }, `hello from ${queue}`]));
  });

  it('MessagingClient emits events and sends requests like Nest clients do', async () => {
    const topic = uniqueTopic();
    const seen: unknown[] = [];

    @Controller()
    class Handler {
      @Consume(`${topic}.event`)
      onEvent(@Payload() payload: unknown): void {
        seen.push(payload);
      }

      @Consume(`${topic}.double`)
      double(@Payload() n: number): Observable<number> {
        return of(n * 2);
      }
    }

    const app = track(await startApp([Handler]));
    const client = app.get(MessagingClient);
    await lastValueFrom(client.emit(`${topic}.event`, { hi: 1 }), { defaultValue: undefined });
    await expect(lastValueFrom(client.send<number>(`${topic}.double`, 21))).resolves.toBe(42);
    await waitFor(() => seen.length === 1);
    expect(seen).toEqual([{ hi: 1 }]);
  });

  it('compresses large bodies transparently when compressAboveBytes is set', async () => {
    const topic = uniqueTopic();
    const seen: Array<{ text: string; compressed: unknown }> = [];

    @Controller()
    class Handler {
      @Consume(topic)
      handle(@Payload() payload: { text: string }, @Ctx() ctx: MessageContext): void {
        seen.push({ text: payload.text, compressed: ctx.getDelivery().contentEncoding });
      }
    }

    const app = track(await startApp([Handler], [], { codec: { compressAboveBytes: 1024 } }));
    await app.get(MessagingPublisher).publish({ topic }, { text: 'z'.repeat(10_000) });
    await waitFor(() => seen.length === 1);
    expect(seen[0]).toEqual({ text: 'z'.repeat(10_000), compressed: 'gzip' });
  });

  it('runs each message inside the server processing hooks', async () => {
    const topic = uniqueTopic();
    const hooks: string[] = [];

    @Controller()
    class Handler {
      @Consume(topic)
      handle(): void {
        hooks.push('handler');
      }
    }

    const moduleRef = await Test.createTestingModule({
      imports: [
        MessagingModule.forRoot({
          service: `hooks-${seq}`,
          backend: new InMemoryBackend({ broker }),
        }),
      ],
      controllers: [Handler],
    }).compile();
    const app = track(moduleRef.createNestApplication({ logger: false }));
    const server = app.get(MessagingServer);
    server.setOnProcessingStartHook((_transport, context, done) => {
      hooks.push(`start:${(context as MessageContext).topic}`);
      void done();
    });
    server.setOnProcessingEndHook(() => hooks.push('end'));
    app.connectMicroservice({ strategy: server });
    await app.startAllMicroservices();
    await app.init();
    await app.get(MessagingPublisher).publish({ topic }, {});
    await waitFor(() => hooks.includes('end'));
    expect(hooks).toEqual([`start:${topic}`, 'handler', 'end']);
  });

  it('runs each message through a runWithProcessingHooks that an agent replaced on Server', async () => {
    // Agents such as dd-trace replace the prototype method, often before the library loads: the
    // server cannot tell that from Nest's own method, so every message goes through it.
    const topic = uniqueTopic();
    const wrapped: string[] = [];
    const prototype = Server.prototype as unknown as Record<string, unknown>;
    const original = prototype.runWithProcessingHooks as (...args: unknown[]) => unknown;
    prototype.runWithProcessingHooks = function (this: Server, ...args: unknown[]): unknown {
      wrapped.push((args[0] as MessageContext).topic);
      return original.apply(this, args);
    };
    try {
      const handled: string[] = [];

      @Controller()
      class Handler {
        @Consume(topic)
        handle(@Ctx() ctx: MessageContext): void {
          handled.push(ctx.topic);
        }
      }

      const app = track(await startApp([Handler]));
      await app.get(MessagingPublisher).publish({ topic }, {});
      await waitFor(() => handled.length === 1);
      expect(wrapped).toEqual([topic]);
    } finally {
      prototype.runWithProcessingHooks = original;
    }
  });

  it('lets every concurrent close wait for the handlers in flight', async () => {
    const topic = uniqueTopic();
    const release = gate();
    const started: string[] = [];

    @Controller()
    class Handler {
      @Consume(topic)
      async handle(): Promise<void> {
        started.push('handler');
        await release.promise;
      }
    }

    const app = track(await startApp([Handler], [], { shutdownTimeoutMs: 30_000 }));
    const server = app.get(MessagingServer);
    await app.get(MessagingPublisher).publish({ topic }, {});
    await waitFor(() => started.length === 1);
    const closed: number[] = [];
    const closes = [1, 2].map((n) => server.close().then(() => closed.push(n)));
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toEqual([]);
    release.open();
    await waitFor(() => closed.length === 2, { timeoutMs: 2000 });
    await Promise.all(closes);
  });

  it('aborts ctx.signal of a handler still running after shutdownTimeoutMs', async () => {
    const topic = uniqueTopic();
    const seen: string[] = [];

    @Controller()
    class Handler {
      @Consume(topic)
      async handle(@Ctx() ctx: MessageContext): Promise<void> {
        seen.push('started');
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
        seen.push(`aborted: ${String((ctx.signal.reason as Error).message)}`);
      }
    }

    const app = await startApp([Handler], [], { shutdownTimeoutMs: 100 });
    await app.get(MessagingPublisher).publish({ topic }, {});
    await waitFor(() => seen.length === 1);
    await app.close();
    await waitFor(() => seen.length === 2);
    expect(seen[1]).toMatch(/^aborted: shutdownTimeoutMs \(100 ms\) passed/);
  });

  it('configures with forRootAsync and reports health', async () => {
    @Injectable()
    class Config {
      readonly service = `async-${seq}`;
    }
    @Module({ providers: [Config], exports: [Config] })
    class ConfigModule {}

    const moduleRef = await Test.createTestingModule({
      imports: [
        MessagingModule.forRootAsync({
          imports: [ConfigModule],
          inject: [Config],
          useFactory: (config: Config) => ({
            service: config.service,
            backend: new InMemoryBackend({ broker }),
          }),
        }),
      ],
    }).compile();
    const app = track(moduleRef.createNestApplication({ logger: false }));
    await app.init();
    expect(app.get(MessagingHealthService).check()).toEqual({
      status: 'up',
      backend: 'memory',
      connection: 'connected',
    });
  });

  it('fails at start-up with a clear message on a bad option', async () => {
    await expect(
      Test.createTestingModule({
        imports: [MessagingModule.forRoot({ service: 'bad name!' })],
      }).compile(),
    ).rejects.toThrow(MessagingConfigError);
    await expect(
      Test.createTestingModule({
        imports: [MessagingModule.forRoot({ service: 's', retry: { maxAttempts: -1 } })],
      }).compile(),
    ).rejects.toThrow(/retry.maxAttempts must be a whole number from 1/);
  });

  it('logs at once that the broker cannot be reached, without the app listening for errors', async () => {
    const lines: string[] = [];
    const capture = (message: unknown): void => {
      lines.push(String(message));
    };
    const logger = {
      log: capture,
      error: capture,
      warn: capture,
      debug: capture,
      verbose: capture,
    };
    const moduleRef = await Test.createTestingModule({
      imports: [
        MessagingModule.forRoot({
          service: `down-${seq}`,
          // Nothing listens on port 1: every attempt is refused.
          backend: new AmqpBackend({
            url: 'amqp://app:pa55word@127.0.0.1:1',
            connectTimeoutMs: 1_500,
            reconnect: { initialDelayMs: 100, maxDelayMs: 200, multiplier: 2 },
          }),
        }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger });
    let settled = false;
    const init = app.init().finally(() => (settled = true));
    await waitFor(() =>
      lines.some((line) => line.includes('connecting to amqp://app:***@127.0.0.1:1')),
    );
    expect(settled).toBe(false);
    await expect(init).rejects.toThrow(/Could not connect to RabbitMQ/);
    expect(lines.join('\n')).not.toContain('pa55word');
    await app.close();
  });

  it('refuses two handlers of one service on one queue, and accepts them with a route name', async () => {
    const topic = uniqueTopic();
    const calls: string[] = [];

    @Controller()
    class Clash {
      @Consume(topic)
      a(): void {}

      @Consume(topic)
      b(): void {}
    }
    await expect(startApp([Clash])).rejects.toThrow(
      /would both consume queue .* Give one of them a route name/,
    );

    @Controller()
    class Named {
      @Consume(topic)
      charge(): void {
        calls.push('charge');
      }

      @Consume(topic, { name: 'audit' })
      audit(): void {
        calls.push('audit');
      }
    }
    const app = track(await startApp([Named]));
    await app.get(MessagingPublisher).publish({ topic }, {});
    await waitFor(() => calls.length === 2);
    expect(calls.sort()).toEqual(['audit', 'charge']);
  });

  it('settles whatever a handler throws, even an object without a prototype', async () => {
    const topic = uniqueTopic();
    let calls = 0;

    @Controller()
    class Handler {
      @Consume(topic, { retry: { maxAttempts: 2, backoff: { initialDelayMs: 10, jitter: 0 } } })
      handle(): void {
        calls++;
        throw Object.create(null);
      }
    }

    const app = track(await startApp([Handler]));
    await app.get(MessagingPublisher).publish({ topic }, {});
    const deadLetters = app.get(DeadLetterService);
    await waitFor(async () => (await deadLetters.list()).length === 1);
    expect(calls).toBe(2);
    expect((await deadLetters.list())[0]).toMatchObject({
      reason: 'max-attempts',
      error: '[object Object]',
    });
  });

  it('dead-letters a request that fails for good, and still answers its caller', async () => {
    const topic = uniqueTopic();

    @Controller()
    class Handler {
      @Consume(topic)
      lookup(): never {
        throw new UnrecoverableError('no such customer');
      }
    }

    const app = track(await startApp([Handler]));
    await expect(app.get(MessagingPublisher).request({ topic }, { id: 1 })).rejects.toThrow(
      'no such customer',
    );
    const deadLetters = app.get(DeadLetterService);
    await waitFor(async () => (await deadLetters.list()).length === 1);
    expect((await deadLetters.list())[0]).toMatchObject({ reason: 'unrecoverable', attempts: 1 });
  });

  it('refuses a route that would take the name of the dead-letter queue', async () => {
    @Controller()
    class Handler {
      @Consume('dead-letter')
      handle(): void {}
    }
    await expect(startApp([Handler])).rejects.toThrow(/name of the service's dead-letter queue/);
  });

  it('rejects @Consume and @Producer misuse when the class is defined', () => {
    expect(() => Consume('order..created')).not.toThrow();
    expect(() => {
      class Bad {
        @Consume('order..created')
        handle(): void {}
      }
      return Bad;
    }).toThrow(/has an empty word/);
    expect(() => Producer('order.*')).toThrow(/cannot publish to a wildcard topic/);
    expect(() => Producer({ topic: 'a', allowUnroutable: 'yes' as never })).toThrow(
      /true or false/,
    );
    expect(() => {
      class Twice {
        @Consume('a.one')
        @Consume('a.two')
        handle(): void {}
      }
      return Twice;
    }).toThrow(/a method takes one @Consume/);
  });

  it('refuses at start a handler name paused before the start that the app does not have', async () => {
    const topic = uniqueTopic();
    @Controller()
    class Known {
      @Consume(topic)
      handle(): void {}
    }
    const moduleRef = await Test.createTestingModule({
      imports: [
        MessagingModule.forRoot({
          service: `nest-${++seq}`,
          backend: new InMemoryBackend({ broker }),
        }),
      ],
      controllers: [Known],
    }).compile();
    const app = track(moduleRef.createNestApplication({ logger: false }));
    const server = app.get(MessagingServer);
    server.pause('Knwon.handle'); // a typo the server cannot check before it knows its handlers
    app.connectMicroservice({ strategy: server });
    await expect(app.startAllMicroservices()).rejects.toThrow(
      /MessagingServer\.pause\('Knwon\.handle'\): no handler of this app has that name.*Known\.handle/,
    );
  });
});
