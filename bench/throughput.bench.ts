/**
 * Throughput on RabbitMQ, publisher confirms and consumer acks on both sides: raw amqplib against
 * this library (a Nest app with a `@Consume` handler, `MessagingPublisher.publish()`). Talks only to
 * BROKER_URL (default 127.0.0.1), bounded by BENCH_MESSAGES, cleans up its queues.
 *
 *   npm run bench            # BENCH_MESSAGES=20000 BENCH_BODY_BYTES=200 BENCH_IN_FLIGHT=1000
 */
import { randomUUID } from 'node:crypto';
import { Controller, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Module } from '@nestjs/common';
import * as amqplib from 'amqplib';
import { AmqpBackend } from '../libs/messaging/src/backends/amqp';
import { Consume } from '../libs/messaging/src/decorators/consume.decorator';
import { MessagingModule } from '../libs/messaging/src/module/messaging.module';
import { MessagingPublisher } from '../libs/messaging/src/producer/messaging.publisher';
import { MessagingServer } from '../libs/messaging/src/server/messaging.server';

const URL = process.env.BROKER_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const TOTAL = Number(process.env.BENCH_MESSAGES ?? 20_000);
const BODY_BYTES = Number(process.env.BENCH_BODY_BYTES ?? 200);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 1000);
const PREFETCH = 100;
const RUN = randomUUID().slice(0, 8);
const payload = { id: 0, text: 'x'.repeat(Math.max(0, BODY_BYTES - 20)) };

/** Runs `send(i)` for i in [0, TOTAL) with at most IN_FLIGHT pending. */
async function pool(send: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < TOTAL) await send(next++);
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
}

async function rawAmqplib(): Promise<number> {
  const queue = `bench-raw-${RUN}`;
  const conn = await amqplib.connect(URL);
  const pub = await conn.createConfirmChannel();
  const sub = await conn.createChannel();
  await pub.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await sub.prefetch(PREFETCH);
  let received = 0;
  let done!: () => void;
  const allReceived = new Promise<void>((resolve) => (done = resolve));
  await sub.consume(queue, (msg) => {
    if (!msg) return;
    JSON.parse(msg.content.toString());
    sub.ack(msg);
    if (++received === TOTAL) done();
  });
  const started = process.hrtime.bigint();
  await pool(
    (i) =>
      new Promise<void>((resolve, reject) => {
        const body = Buffer.from(JSON.stringify({ ...payload, id: i }));
        pub.sendToQueue(
          queue,
          body,
          { persistent: true, messageId: randomUUID(), contentType: 'application/json' },
          (err: unknown) =>
            err ? reject(err instanceof Error ? err : new Error('publish nacked')) : resolve(),
        );
      }),
  );
  await allReceived;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await pub.deleteQueue(queue);
  await conn.close();
  return TOTAL / seconds;
}

async function library(): Promise<number> {
  const exchange = `bench-${RUN}`;
  let received = 0;
  let done!: () => void;
  const allReceived = new Promise<void>((resolve) => (done = resolve));

  @Controller()
  class BenchConsumer {
    @Consume('bench.message', { concurrency: PREFETCH })
    handle(): void {
      if (++received === TOTAL) done();
    }
  }
  @Module({
    imports: [
      MessagingModule.forRoot({
        service: `bench-${RUN}`,
        backend: new AmqpBackend({ url: URL, exchange, maxInFlightPublishes: IN_FLIGHT }),
      }),
    ],
    controllers: [BenchConsumer],
  })
  class BenchModule {}

  const app: INestApplication = await NestFactory.create(BenchModule, { logger: ['error'] });
  app.connectMicroservice({ strategy: app.get(MessagingServer) }, { inheritAppConfig: true });
  await app.startAllMicroservices();
  await app.init();
  const publisher = app.get(MessagingPublisher);
  const started = process.hrtime.bigint();
  await pool(async (i) => {
    await publisher.publish({ topic: 'bench.message' }, { ...payload, id: i });
  });
  await allReceived;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await app.close();
  const conn = await amqplib.connect(URL);
  const ch = await conn.createChannel();
  await ch.deleteQueue(`bench-${RUN}.bench.message`);
  await ch.deleteQueue(`bench-${RUN}.dead-letter`);
  await ch.deleteExchange(exchange);
  await conn.close();
  return TOTAL / seconds;
}

async function main(): Promise<void> {
  console.log(
    `${TOTAL} messages of ~${BODY_BYTES} B, persistent, quorum queue, confirms + acks, ` +
      `${IN_FLIGHT} unconfirmed at most, prefetch ${PREFETCH}, broker ${URL.replace(/\/\/[^@]*@/, '//')}`,
  );
  const raw = await rawAmqplib();
  console.log(`raw amqplib        ${raw.toFixed(0).padStart(8)} msg/s`);
  const ours = await library();
  console.log(`@app/messaging     ${ours.toFixed(0).padStart(8)} msg/s`);
  console.log(`ratio              ${(ours / raw).toFixed(2).padStart(8)} (target >= 0.90)`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
