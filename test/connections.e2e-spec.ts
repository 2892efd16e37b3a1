import { Controller, Injectable, type INestApplication, type Type } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import {
  Consume,
  InMemoryBackend,
  InMemoryBroker,
  InMemoryMessageStore,
  MessageProducer,
  MessagingConfigError,
  MessagingModule,
  MessagingServer,
  Producer,
} from '@app/messaging';
import { describeSeveralConnections } from './support/several-connections';

describeSeveralConnections({
  name: 'a second in-memory broker',
  run: 'ce2e',
  backend: () => new InMemoryBackend({ broker: new InMemoryBroker() }),
});

let seq = 0;
const memory = (): InMemoryBackend => new InMemoryBackend({ broker: new InMemoryBroker() });

/** Compiles and starts an app as users do; resolves the error start-up failed with, if any. */
async function startupError(
  imports: unknown[],
  controllers: Type[] = [],
  providers: Type[] = [],
): Promise<unknown> {
  let app: INestApplication | undefined;
  try {
    const moduleRef = await Test.createTestingModule({
      imports: imports as never[],
      controllers,
      providers,
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    app.connectMicroservice({ strategy: app.get(MessagingServer) });
    await app.startAllMicroservices();
    await app.init();
    return undefined;
  } catch (error) {
    return error;
  } finally {
    await app?.close().catch(() => undefined);
  }
}

describe('several connections: misuse fails at start-up with the fix', () => {
  it('refuses two forRoot() without a name, saying to give one a name', async () => {
    const error = await startupError([
      MessagingModule.forRoot({ service: `a${++seq}`, backend: memory() }),
      MessagingModule.forRoot({ service: `b${seq}`, backend: memory() }),
    ]);
    expect(error).toBeInstanceOf(MessagingConfigError);
    expect((error as Error).message).toMatch(
      /imported twice without a name.*give\s+each other one a name/s,
    );
  });

  it('refuses two forRoot() with one name', async () => {
    const error = await startupError([
      MessagingModule.forRoot({ service: `a${++seq}`, backend: memory() }),
      MessagingModule.forRoot({ name: 'x', service: `b${seq}`, backend: memory() }),
      MessagingModule.forRoot({ name: 'x', service: `c${seq}`, backend: memory() }),
    ]);
    expect(error).toBeInstanceOf(MessagingConfigError);
    expect((error as Error).message).toContain("twice with name 'x'");
  });

  it('refuses one durable message store shared by two connections', async () => {
    // A durable store (its outbox relayed after the commit), as a PostgresMessageStore is.
    const shared = Object.assign(new InMemoryMessageStore(), { durable: true });
    const error = await startupError([
      MessagingModule.forRoot({ service: `a${++seq}`, backend: memory(), store: shared }),
      MessagingModule.forRoot({ name: 'x', service: `a${seq}`, backend: memory(), store: shared }),
    ]);
    expect(error).toBeInstanceOf(MessagingConfigError);
    expect((error as Error).message).toMatch(
      /'default' and 'x' share one message store.*schema of its own/,
    );
  });

  it('consumes none of the handlers of a named connection with consumers: false', async () => {
    @Controller()
    class Split {
      @Consume(`split${++seq}.a`)
      here() {}

      @Consume(`split${seq}.b`, { connection: 'x' })
      elsewhere() {}
    }
    const moduleRef = await Test.createTestingModule({
      imports: [
        MessagingModule.forRoot({ service: `a${seq}`, backend: memory() }),
        MessagingModule.forRoot({
          name: 'x',
          service: `a${seq}`,
          backend: memory(),
          consumers: false,
        }),
      ],
      controllers: [Split],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    app.connectMicroservice({ strategy: app.get(MessagingServer) });
    await app.startAllMicroservices();
    await app.init();
    try {
      expect(app.get(MessagingServer).handlers.map((h) => h.handler)).toEqual(['Split.here']);
    } finally {
      await app.close();
    }
  });

  it('refuses named connections without the default one', async () => {
    // An app with no handler never asks for MessagingServer: init() is where it fails.
    const moduleRef = await Test.createTestingModule({
      imports: [MessagingModule.forRoot({ name: 'x', service: `a${++seq}`, backend: memory() })],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await expect(app.init()).rejects.toThrow(
      /imported only with a name \('x'\): import it once without a name/,
    );
    await app.close();
  });

  it('refuses @Consume on a connection the app does not have, naming the ones it has', async () => {
    @Controller()
    class Lost {
      @Consume(`lost${++seq}.x`, { connection: 'nope' })
      handle(@Payload() _: unknown) {}
    }
    const error = await startupError(
      [MessagingModule.forRoot({ service: `a${seq}`, backend: memory() })],
      [Lost],
    );
    expect(error).toBeInstanceOf(MessagingConfigError);
    expect((error as Error).message).toMatch(
      /@Consume on Lost\.handle: no connection 'nope'\. Import MessagingModule\.forRoot\(\{ name: 'nope'.*'default'/,
    );
  });

  it('refuses @Producer on a connection the app does not have', async () => {
    @Injectable()
    class Sender {
      constructor(
        @Producer({ topic: `lost${++seq}.y`, connection: 'nope' }) readonly p: MessageProducer,
      ) {}
    }
    const error = await startupError(
      [MessagingModule.forRoot({ service: `a${seq}`, backend: memory() })],
      [],
      [Sender],
    );
    expect(error).toBeInstanceOf(MessagingConfigError);
    expect((error as Error).message).toContain("no connection 'nope'");
  });

  it('refuses a connection name that is not a word, at the decorator', () => {
    expect(() => {
      class Spaced {
        @Consume('a.b', { connection: 'no spaces' })
        handle() {}
      }
      return Spaced;
    }).toThrow(/@Consume on Spaced.handle: connection must be a connection name/);
    expect(() => MessagingModule.forRoot({ name: '', service: 's' })).toThrow(/connection name/);
  });
});
