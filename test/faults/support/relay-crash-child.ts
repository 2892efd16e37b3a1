/**
 * A process whose outbox relay dies between the broker's confirm and the removal of the row (the
 * relay's commit): its backend SIGKILLs the process as soon as one publish is confirmed. Argument: a
 * JSON `{ url, schema }`. Run by exactly-once.faults-spec.ts through scripts/faults-register.js.
 */
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AmqpBackend, MessagingModule, PostgresMessageStore } from '@app/messaging';
import type { BackendPublishOptions, OutgoingMessage } from '@app/messaging/backend';
import { TEST_DATABASE_URL } from '../../../libs/messaging/src/testing/postgres.fixture';

const { url, schema } = JSON.parse(process.argv[2]) as { url: string; schema: string };

class CrashAfterConfirm extends AmqpBackend {
  override async publish(message: OutgoingMessage, options: BackendPublishOptions): Promise<void> {
    await super.publish(message, options);
    process.stdout.write(`CONFIRMED ${message.messageId}\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}

@Module({
  imports: [
    MessagingModule.forRoot({
      service: 'relay-crash',
      backend: new CrashAfterConfirm({ url }),
      store: new PostgresMessageStore({ connectionString: TEST_DATABASE_URL, schema }),
      outbox: { pollIntervalMs: 50 },
    }),
  ],
})
class RelayOnlyModule {}

void NestFactory.createApplicationContext(RelayOnlyModule, { logger: ['error'] }).then((app) =>
  app.init(),
);
