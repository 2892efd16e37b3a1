import { Controller, Injectable, type LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { InMemoryBackend } from '../backends/memory/in-memory.backend';
import { InMemoryBroker } from '../backends/memory/in-memory.broker';
import { Consume } from '../decorators/consume.decorator';
import { MessagingModule } from '../module/messaging.module';
import { waitFor } from '../testing/wait-for';
import { MessagingServer } from './messaging.server';
import { SERVER_START_GRACE_MS } from './messaging-wiring.check';

/** A Nest logger that keeps the warnings. */
class WarningLog implements LoggerService {
  readonly warnings: string[] = [];
  log(): void {}
  error(): void {}
  warn(message: unknown): void {
    this.warnings.push(String(message));
  }
}

@Controller()
class OrdersController {
  @Consume('wiring.order.created')
  onCreated(): void {}
}

@Injectable()
class MisplacedHandler {
  @Consume('wiring.order.paid')
  onPaid(): void {}
}

const GRACE_MS = 20;

async function start(connect: boolean, consumers?: boolean) {
  const log = new WarningLog();
  const moduleRef = await Test.createTestingModule({
    imports: [
      MessagingModule.forRoot({
        service: 'wiring',
        backend: new InMemoryBackend({ broker: new InMemoryBroker() }),
        consumers,
      }),
    ],
    controllers: [OrdersController],
    providers: [MisplacedHandler],
  })
    .overrideProvider(SERVER_START_GRACE_MS)
    .useValue(GRACE_MS)
    .compile();
  const app = moduleRef.createNestApplication({ logger: log });
  if (connect) {
    app.connectMicroservice({ strategy: app.get(MessagingServer) }, { inheritAppConfig: true });
  }
  await app.init();
  // Started after app.init(), as `await app.listen(); await app.startAllMicroservices()` does.
  if (connect) await app.startAllMicroservices();
  return { app, log };
}

describe('MessagingWiringCheck: day-one mistakes get a warning that names the fix', () => {
  it('warns about @Consume on a provider and about a server that was never started', async () => {
    const { app, log } = await start(false);
    try {
      await waitFor(() => log.warnings.some((w) => w.includes('never started')));
      expect(log.warnings).toEqual(
        expect.arrayContaining([
          expect.stringMatching(
            /@Consume on MisplacedHandler.onPaid is ignored: MisplacedHandler is a provider.*@Controller\(\)/,
          ),
          expect.stringMatching(
            /1 @Consume handler\(s\) declared \(OrdersController.onCreated\) but the MessagingServer transport was never started.*app.connectMicroservice\(\{ strategy: app.get\(MessagingServer\) \}\)/,
          ),
        ]),
      );
    } finally {
      await app.close();
    }
  });

  it('says nothing about a server started after app.init(), within the grace period', async () => {
    const { app, log } = await start(true);
    try {
      // Asserting an absence: let the grace period pass three times over, then look.
      await new Promise((resolve) => setTimeout(resolve, 3 * GRACE_MS));
      expect(log.warnings.filter((w) => w.includes('never started'))).toEqual([]);
      expect(log.warnings.filter((w) => w.includes('is a provider'))).toHaveLength(1);
    } finally {
      await app.close();
    }
  });

  it('says nothing about an unstarted server in a producer-only app (consumers: false)', async () => {
    const { app, log } = await start(false, false);
    try {
      // Asserting an absence: let the grace period pass three times over, then look.
      await new Promise((resolve) => setTimeout(resolve, 3 * GRACE_MS));
      expect(log.warnings.filter((w) => w.includes('never started'))).toEqual([]);
    } finally {
      await app.close();
    }
  });
});
