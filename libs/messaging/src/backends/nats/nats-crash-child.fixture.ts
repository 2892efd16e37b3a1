/**
 * A consumer of the NATS crash spec as its own OS process:
 * `node -r ./scripts/faults-register.js nats-crash-child.fixture.ts '<json CrashChildConfig>'`. Prints `READY`
 * once consuming, `START <id>` when a handler begins and `DONE <id>` when it returns (before the
 * backend acks: a kill in between is a redelivery, never a loss). The spec SIGKILLs it mid-handler.
 */
import { Logger } from '@nestjs/common';
import { NatsBackend } from './nats.backend';

export interface CrashChildConfig {
  servers: string;
  prefix: string;
  service: string;
  topic: string;
  ackWaitMs: number;
  concurrency: number;
  handlerMs: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as CrashChildConfig;
Logger.overrideLogger(false);

async function main(): Promise<void> {
  const backend = new NatsBackend({
    servers: config.servers,
    prefix: config.prefix,
    ackWaitMs: config.ackWaitMs,
  });
  backend.on('error', () => undefined);
  await backend.subscribe(
    {
      service: config.service,
      queue: `${config.service}.${config.topic}`,
      topics: [config.topic],
      external: false,
      concurrency: config.concurrency,
    },
    async (delivery) => {
      const id = (JSON.parse(delivery.body.toString()) as { id: string }).id;
      process.stdout.write(`START ${id}\n`);
      await new Promise((resolve) => setTimeout(resolve, config.handlerMs));
      process.stdout.write(`DONE ${id}\n`);
      return { action: 'ack' };
    },
  );
  process.stdout.write('READY\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`crash child failed: ${String(error)}\n`);
  process.exit(1);
});
