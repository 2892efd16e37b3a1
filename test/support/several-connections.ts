import { Controller, Injectable, type INestApplication, type Type } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import {
  asyncApiDocument,
  type BrokerBackend,
  Consume,
  DeadLetterService,
  InMemoryBackend,
  InMemoryBroker,
  MessageContext,
  MessageProducer,
  MessagingHealthService,
  MessagingModule,
  MessagingServer,
  Producer,
  UnroutableError,
} from '@app/messaging';
import { waitFor } from '@app/messaging/testing';

/** The broker a scenario puts on the named connection `'events'`, beside an in-memory default. */
export interface NamedBroker {
  /** Shown in test names. */
  readonly name: string;
  /** This run's id: the service and every topic carry it, so `cleanup` finds what the run declared. */
  readonly run: string;
  /** A backend on the broker, in this run's namespace. */
  backend(): BrokerBackend;
  /** Deletes what the run left on the broker. */
  cleanup?(): Promise<unknown>;
}

let seq = 0;

/**
 * SPEC §5 "Several connections in one app" with `broker` as the connection `'events'` and an
 * in-memory broker as the default: each handler consumes on its own connection, each producer
 * publishes on its own, requests are answered on the named one, a retry stays on it, and health
 * names it.
 */
export function describeSeveralConnections(broker: NamedBroker): void {
  describe(`several connections: default in memory + 'events' on ${broker.name}`, () => {
    const run = `${broker.run}${++seq}`;
    const topic = `conn.${run}.placed`;
    const seen: { on: string; payload: unknown; attempt: number }[] = [];
    let failFirst = true;
    let app: INestApplication;

    @Controller()
    class Handlers {
      @Consume(topic, {
        connection: 'events',
        retry: { maxAttempts: 3, backoff: { initialDelayMs: 50 } },
      })
      onEvents(@Payload() payload: unknown, @Ctx() ctx: MessageContext) {
        if ((payload as { fail?: boolean }).fail && failFirst) {
          failFirst = false;
          throw new Error('transient');
        }
        seen.push({ on: 'events', payload, attempt: ctx.attempt });
      }

      @Consume(`conn.${run}.local`)
      onDefault(@Payload() payload: unknown) {
        seen.push({ on: 'default', payload, attempt: 1 });
      }

      @Consume(`conn.${run}.broken`, { connection: 'events', retry: false })
      broken() {
        throw new Error('broken for good');
      }

      @Consume(`conn.${run}.rpc`, { connection: 'events' })
      answer(@Payload() n: number) {
        return n * 2;
      }
    }

    @Injectable()
    class Producers {
      constructor(
        @Producer({ topic, connection: 'events' }) readonly onEvents: MessageProducer<object>,
        @Producer(topic) readonly onDefault: MessageProducer<object>,
        @Producer(`conn.${run}.local`) readonly local: MessageProducer<object>,
        @Producer({ topic: `conn.${run}.broken`, connection: 'events' })
        readonly broken: MessageProducer<object>,
        @Producer({ topic: `conn.${run}.rpc`, connection: 'events' })
        readonly rpc: MessageProducer<number, number>,
      ) {}
    }

    beforeAll(async () => {
      app = await startApp([Handlers], [Producers], `conn-${run}`, broker.backend());
    }, 30_000);

    afterAll(async () => {
      await app?.close();
      await broker.cleanup?.();
    }, 30_000);

    it('consumes and publishes each handler and producer on its own connection', async () => {
      const producers = app.get(Producers);
      await producers.onEvents.publish({ n: 1 });
      await producers.local.publish({ n: 2 });
      await waitFor(() => seen.length >= 2, { message: 'one message on each connection' });
      expect(seen).toEqual(
        expect.arrayContaining([
          { on: 'events', payload: { n: 1 }, attempt: 1 },
          { on: 'default', payload: { n: 2 }, attempt: 1 },
        ]),
      );
      // Nobody consumes the topic on the default broker: the default producer's publish is refused.
      await expect(producers.onDefault.publish({ n: 3 })).rejects.toBeInstanceOf(UnroutableError);
    });

    it('retries on the named connection and answers requests there', async () => {
      const producers = app.get(Producers);
      await producers.onEvents.publish({ fail: true });
      await waitFor(() => seen.some((s) => (s.payload as { fail?: boolean }).fail), {
        message: 'the failing message handled on its retry',
      });
      expect(seen.find((s) => (s.payload as { fail?: boolean }).fail)).toMatchObject({
        on: 'events',
        attempt: 2,
      });
      await expect(producers.rpc.request(21)).resolves.toBe(42);
    });

    it('names the connection in health and in the server handlers', () => {
      const health = app.get(MessagingHealthService).check();
      expect(health.status).toBe('up');
      expect(health.connections?.events).toMatchObject({ status: 'up', connection: 'connected' });
      const handlers = app.get(MessagingServer).handlers;
      expect(handlers.find((h) => h.handler === 'Handlers.onEvents')).toMatchObject({
        connection: 'events',
      });
      expect(handlers.find((h) => h.handler === 'Handlers.onDefault')).toMatchObject({
        connection: 'default',
      });
    });

    it("keeps a named connection's dead letters on its broker, read through forConnection()", async () => {
      await app.get(Producers).broken.publish({ n: 4 });
      const deadLetters = app.get(DeadLetterService);
      const events = deadLetters.forConnection('events');
      await waitFor(async () => (await events.list()).length === 1, {
        message: 'the dead letter on the named connection',
      });
      expect((await events.list())[0]).toMatchObject({
        payload: { n: 4 },
        error: 'broken for good',
      });
      expect(await deadLetters.list()).toEqual([]);
      expect(await events.purge()).toBe(1);
      expect(() => deadLetters.forConnection('nope')).toThrow(/no connection 'nope'/);
    });

    it('names the connection in the AsyncAPI document', () => {
      const document = asyncApiDocument(app, { title: 't', version: '1' }) as {
        operations: Record<string, { 'x-messaging': { handler?: string; connection?: string } }>;
      };
      const operations = Object.values(document.operations).map((o) => o['x-messaging']);
      expect(operations.find((o) => o.handler === 'Handlers.onEvents')?.connection).toBe('events');
      expect(operations.find((o) => o.handler === 'Handlers.onDefault')).not.toHaveProperty(
        'connection',
      );
    });
  });
}

/** An app with the default connection in memory and `events` on `backend`, started as users do. */
export async function startApp(
  controllers: Type[],
  providers: Type[],
  service: string,
  events: BrokerBackend,
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      MessagingModule.forRoot({
        service,
        backend: new InMemoryBackend({ broker: new InMemoryBroker() }),
      }),
      MessagingModule.forRoot({ name: 'events', service, backend: events }),
    ],
    controllers,
    providers,
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  app.connectMicroservice({ strategy: app.get(MessagingServer) });
  try {
    await app.startAllMicroservices();
    await app.init();
  } catch (error) {
    await app.close();
    throw error;
  }
  return app;
}
