import { Controller, type INestApplication, type Type } from '@nestjs/common';
import { EventPattern, MessagePattern, Transport } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { InMemoryBackend } from '../backends/memory/in-memory.backend';
import { InMemoryBroker } from '../backends/memory/in-memory.broker';
import { Consume } from '../decorators/consume.decorator';
import { MessagingConfigError } from '../errors/messaging.errors';
import { MESSAGING_TRANSPORT } from '../messaging.constants';
import { MessagingModule } from '../module/messaging.module';
import { MessagingServer } from './messaging.server';

@Controller()
class OrdersController {
  @Consume('order.paid')
  onPaid(): void {}

  @EventPattern('order.created')
  onCreated(_order: unknown): void {}
}

@Controller()
class MathController {
  @MessagePattern({ cmd: 'sum' })
  sum(numbers: number[]): number {
    return numbers.reduce((a, b) => a + b, 0);
  }
}

@Controller()
class ExplicitController {
  @EventPattern('order.shipped', MESSAGING_TRANSPORT)
  onShipped(_order: unknown): void {}
}

@Controller()
class TcpOnlyController {
  @MessagePattern('tcp.sum', Transport.TCP)
  sum(numbers: number[]): number {
    return numbers.length;
  }
}

let apps: INestApplication[] = [];

afterEach(async () => {
  const open = apps;
  apps = [];
  await Promise.all(open.map((app) => app.close()));
});

/** An app with `controllers`, our transport connected, and a TCP microservice too if `tcp`. */
async function app(controllers: Type[], tcp = false): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      MessagingModule.forRoot({
        service: 'foreign-patterns',
        backend: new InMemoryBackend({ broker: new InMemoryBroker() }),
      }),
    ],
    controllers,
  }).compile();
  const created = moduleRef.createNestApplication({ logger: false });
  apps.push(created);
  if (tcp) {
    created.connectMicroservice({
      transport: Transport.TCP,
      options: { host: '127.0.0.1', port: 0 },
    });
  }
  created.connectMicroservice({ strategy: created.get(MessagingServer) });
  return created;
}

describe('MessagingServer refuses Nest pattern handlers it would never call', () => {
  it('fails at start-up on an @EventPattern of a controller, naming @Consume as the fix', async () => {
    const refused = await app([OrdersController]);
    const started = refused.startAllMicroservices();
    await expect(started).rejects.toThrow(MessagingConfigError);
    await expect(started).rejects.toThrow(
      "OrdersController.onCreated has @EventPattern('order.created'), which the nest-messaging transport never calls: use @Consume('order.created') instead",
    );
    // A start that failed started nothing: the wiring check and health do not count it as started.
    expect(refused.get(MessagingServer).isListening).toBe(false);
  });

  it('fails on a @MessagePattern, and on one given this transport explicitly, each on its own line', async () => {
    const started = (await app([MathController, ExplicitController])).startAllMicroservices();
    const error = (await started.then(
      () => undefined,
      (e: unknown) => e,
    )) as Error;
    expect(error).toBeInstanceOf(MessagingConfigError);
    expect(error.message.split('\n')).toEqual([
      expect.stringMatching(
        /^MathController\.sum has @MessagePattern\(\{"cmd":"sum"\}\), which the nest-messaging transport never calls: use @Consume\('<topic>'\) instead/,
      ),
      "ExplicitController.onShipped has @EventPattern('order.shipped'), which the nest-messaging transport never calls: use @Consume('order.shipped') instead.",
    ]);
  });

  it("leaves pattern handlers to the app's other transport: a TCP microservice beside it", async () => {
    const hybrid = await app([OrdersController, MathController, TcpOnlyController], true);
    await hybrid.startAllMicroservices();
    expect(hybrid.get(MessagingServer).handlers.map((h) => h.handler)).toEqual([
      'OrdersController.onPaid',
    ]);
  });

  it('still refuses one given this transport explicitly in a hybrid app', async () => {
    const hybrid = await app([ExplicitController], true);
    await expect(hybrid.startAllMicroservices()).rejects.toThrow(
      /ExplicitController\.onShipped has @EventPattern\('order\.shipped'\)/,
    );
  });

  it('leaves alone a handler of another transport the app does not run', async () => {
    const started = await app([TcpOnlyController]);
    await expect(started.startAllMicroservices()).resolves.toBeDefined();
  });
});
