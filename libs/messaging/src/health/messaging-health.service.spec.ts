import { Controller } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { InMemoryBackend } from '../backends/memory/in-memory.backend';
import { InMemoryBroker } from '../backends/memory/in-memory.broker';
import { Consume } from '../decorators/consume.decorator';
import { MessagingModule } from '../module/messaging.module';
import { MessagingServer } from '../server/messaging.server';
import { MessagingHealthService } from './messaging-health.service';

@Controller()
class OrdersController {
  @Consume('health.order.created')
  onCreated(): void {}
}

/** The grace period of the wiring check (`SERVER_START_GRACE_MS`), 5 s, read off the clock of `check(now)`. */
const AFTER_GRACE_MS = 5_000;

async function start(options: {
  connect: boolean;
  consumers?: boolean;
  controllers?: (new () => unknown)[];
}) {
  const moduleRef = await Test.createTestingModule({
    imports: [
      MessagingModule.forRoot({
        service: 'health-wiring',
        backend: new InMemoryBackend({ broker: new InMemoryBroker() }),
        consumers: options.consumers,
      }),
    ],
    controllers: options.controllers ?? [OrdersController],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  if (options.connect) {
    app.connectMicroservice({ strategy: app.get(MessagingServer) }, { inheritAppConfig: true });
  }
  await app.init();
  if (options.connect) await app.startAllMicroservices();
  return app;
}

describe('MessagingHealthService: an app whose handlers never consume is not healthy', () => {
  it('is down once the grace period is over when MessagingServer was never started, and says how to fix it', async () => {
    const app = await start({ connect: false });
    try {
      const health = app.get(MessagingHealthService);
      // Still within the grace period: the server may be started just after start-up.
      expect(health.check()).toMatchObject({ status: 'up' });
      expect(health.check().reason).toBeUndefined();
      const later = health.check(Date.now() + AFTER_GRACE_MS);
      expect(later.status).toBe('down');
      expect(later.reason).toMatch(
        /OrdersController\.onCreated.*the MessagingServer transport was never started: .*app\.connectMicroservice\(\{ strategy: app\.get\(MessagingServer\) \}\) and await app\.startAllMicroservices\(\)/,
      );
    } finally {
      await app.close();
    }
  });

  it.each([
    ['an app that started the server after init()', { connect: true }],
    ['a producer-only app (consumers: false)', { connect: false, consumers: false }],
    ['an app without handlers', { connect: false, controllers: [] }],
  ])('stays up for %s', async (_case, options) => {
    const app = await start(options);
    try {
      const report = app.get(MessagingHealthService).check(Date.now() + AFTER_GRACE_MS);
      expect(report.status).toBe('up');
      expect(report.reason).toBeUndefined();
    } finally {
      await app.close();
    }
  });
});
