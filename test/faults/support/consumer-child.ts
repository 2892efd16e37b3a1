/**
 * A consumer as its own OS process, for faults that hit a process (SIGKILL, SIGSTOP/SIGCONT,
 * SIGTERM). A small Nest app: `MessagingModule.forRoot({ service, backend: new AmqpBackend(...) })`
 * and one `@Consume` handler that does its work (a sleep), then writes a fsync'ed `handled` row to
 * the ledger, then returns (so the ack follows the row). A payload `{ poison: true }` always throws,
 * `{ failUntil: n }` throws on attempts before n (an `attempt` row per throw), `{ crash: true }`
 * makes the process exit(1) mid-handler (a crash loop). A handler that finds
 * `Object.prototype` polluted writes a `crash` row. Configuration: a JSON `ConsumerConfig` in argv[2].
 * With `backend` set the child runs the Redis Streams or NATS JetStream backend it describes
 * (stream-backends.ts) instead of RabbitMQ.
 * Run with `node -r ./scripts/faults-register.js test/faults/support/consumer-child.ts '<json>'`; prints
 * `READY` once consuming; on SIGTERM it closes the app (the library drains) and exits 0.
 */
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  AmqpBackend,
  Consume,
  MessageContext,
  MessagingModule,
  MessagingServer,
} from '@app/messaging';
import { ChildLedgerWriter } from './ledger';
import { createStreamBackend, type StreamBackendSpec } from './stream-backends';

export interface ConsumerConfig {
  url: string;
  service: string;
  topic: string;
  ledgerDir: string;
  concurrency: number;
  /** Handler work time, uniformly in [min, max] ms. */
  handlerMs: [number, number];
  heartbeatSeconds?: number;
  maxAttempts?: number;
  retryDelayMs?: number;
  maxBodyBytes?: number;
  /** The work queue's `x-delivery-limit` (AmqpBackend `deliveryLimit`). */
  deliveryLimit?: number;
  /** A Redis or NATS backend instead of RabbitMQ (`url` and the AMQP options are then unused). */
  backend?: StreamBackendSpec;
}

const config = JSON.parse(process.argv[2] ?? '{}') as ConsumerConfig;
const ledger = new ChildLedgerWriter(config.ledgerDir);
const pid = process.pid;

process.on('unhandledRejection', (error) =>
  ledger.write({
    kind: 'crash',
    pid,
    error: `unhandledRejection: ${String(error)}`,
    at: Date.now(),
  }),
);
process.on('uncaughtException', (error) => {
  ledger.write({
    kind: 'crash',
    pid,
    error: `uncaughtException: ${String(error)}`,
    at: Date.now(),
  });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

@Controller()
class Worker {
  @Consume(config.topic, {
    concurrency: config.concurrency,
    retry: {
      maxAttempts: config.maxAttempts ?? 3,
      backoff: { initialDelayMs: config.retryDelayMs ?? 100, multiplier: 1, jitter: 0 },
    },
  })
  async handle(@Payload() body: unknown, @Ctx() ctx: MessageContext): Promise<void> {
    const load = (body ?? {}) as {
      seq?: number;
      poison?: boolean;
      failUntil?: number;
      crash?: boolean;
    };
    if (({} as Record<string, unknown>).p !== undefined) {
      ledger.write({ kind: 'crash', pid, error: 'Object.prototype polluted', at: Date.now() });
    }
    const row = {
      id: ctx.messageId,
      seq: load.seq,
      attempt: ctx.attempt,
      redelivered: ctx.redelivered,
      pid,
      at: Date.now(),
    };
    if (load.crash) {
      ledger.write({ kind: 'attempt', ...row });
      process.exit(1);
    }
    if (load.poison || (load.failUntil !== undefined && ctx.attempt < load.failUntil)) {
      ledger.write({ kind: 'attempt', ...row });
      throw new Error(
        `${load.poison ? 'poison' : 'transient failure of'} message ${String(load.seq)}`,
      );
    }
    const [min, max] = config.handlerMs;
    await sleep(min + Math.random() * (max - min));
    ledger.write({ kind: 'handled', ...row, at: Date.now() });
  }
}

async function main(): Promise<void> {
  const backend = config.backend
    ? createStreamBackend(config.backend, `faults-consumer-${pid}`)
    : new AmqpBackend({
        url: config.url,
        heartbeatSeconds: config.heartbeatSeconds ?? 5,
        connectionName: `faults-consumer-${pid}`,
        ...(config.deliveryLimit ? { deliveryLimit: config.deliveryLimit } : {}),
        reconnect: { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2 },
      });
  backend.on('error', (error) =>
    ledger.write({
      kind: 'backend-error',
      pid,
      error: String(error?.message ?? error),
      at: Date.now(),
    }),
  );

  @Module({
    imports: [
      MessagingModule.forRoot({
        service: config.service,
        backend,
        ...(config.maxBodyBytes ? { codec: { maxBodyBytes: config.maxBodyBytes } } : {}),
      }),
    ],
    controllers: [Worker],
  })
  class ConsumerModule {}

  const app = await NestFactory.create(ConsumerModule, { logger: ['error', 'warn'] });
  app.connectMicroservice({ strategy: app.get(MessagingServer) }, { inheritAppConfig: true });
  await app.startAllMicroservices();
  await app.init();
  process.once('SIGTERM', () => {
    const started = Date.now();
    app.close().then(
      () => {
        process.stdout.write(`CLOSED ${Date.now() - started}\n`);
        ledger.close();
        process.exit(0);
      },
      (error: unknown) => {
        process.stderr.write(`close failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  });
  process.stdout.write('READY\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`consumer failed to start: ${String(error)}\n`);
  process.exit(2);
});
