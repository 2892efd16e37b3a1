/**
 * `npm run bench:pieces`: what each piece of the in-process pipeline costs per message, CPU and
 * allocation, each measured alone over 200,000 calls in a child process of its own. Allocation is
 * read from V8's own accounting (`--trace-gc-nvp`), less the same child doing nothing.
 * This is the table of docs/performance.md; it needs no broker.
 */
import { execFileSync } from 'node:child_process';
import 'reflect-metadata';
import { Controller, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Payload } from '@nestjs/microservices';
import {
  Consume,
  InMemoryBackend,
  InMemoryBroker,
  MessageContext,
  MessageProducer,
  MessagingModule,
  MessagingServer,
  Producer,
} from '../../libs/messaging/src';
import type { Delivery } from '../../libs/messaging/src/backend/broker-backend.interface';
import { MessageCodec } from '../../libs/messaging/src/codec/message-codec';

const CALLS = 200_000;
const WARM_UP = 5_000;
const PIECES = ['nest-handler', 'server-delivery', 'codec-decode', 'codec-encode', 'publish'];

@Controller()
class Handler {
  @Consume('pieces.msg', { concurrency: 100 })
  handle(@Payload() _payload: unknown): void {}
}

@Injectable()
class Sender {
  constructor(@Producer('pieces.nobody') readonly producer: MessageProducer<unknown>) {}
}

@Module({
  imports: [
    MessagingModule.forRoot({
      service: 'pieces',
      backend: new InMemoryBackend({ broker: new InMemoryBroker() }),
      allowUnroutable: true,
    }),
  ],
  controllers: [Handler],
  providers: [Sender],
})
class PiecesModule {}

/** Runs one piece CALLS times and prints its CPU per call. */
async function runPiece(piece: string): Promise<void> {
  const app = await NestFactory.create(PiecesModule, { logger: ['error'] });
  const server = app.get(MessagingServer);
  app.connectMicroservice({ strategy: server }, { inheritAppConfig: true });
  await app.startAllMicroservices();
  await app.init();
  const codec = app.get(MessageCodec);
  const handler = [...server.getHandlers().values()][0];
  const encoded = codec.encode({ id: 1, pad: 'x'.repeat(230) });
  const delivery: Delivery = {
    body: encoded.body,
    contentType: encoded.contentType,
    headers: {},
    topic: 'pieces.msg',
    queue: 'pieces.pieces.msg',
    messageId: 'm',
    attempt: 1,
    redelivered: false,
  };
  const ctx = new MessageContext(delivery, 'pieces');
  const payload = { id: 1, pad: 'x' };
  // The server's own route (its handler slots, retry and dead-letter settings), as it was started.
  const internals = server as unknown as {
    started: unknown[];
    onDelivery(r: unknown, d: Delivery): Promise<unknown>;
  };
  const route = internals.started[0];
  const onDelivery = internals.onDelivery.bind(server);
  const producer = app.get(Sender).producer;
  const pad = 'x'.repeat(230);
  const calls: Record<string, (i: number) => unknown> = {
    'nest-handler': () => handler(payload, ctx),
    'server-delivery': () => onDelivery(route, delivery),
    'codec-decode': () => codec.decode(delivery),
    'codec-encode': (i) => codec.encode({ id: i, pad }),
    publish: (i) => producer.publish({ id: i, pad }),
    none: () => undefined,
  };
  const call = calls[piece];
  for (let i = 0; i < WARM_UP; i++) await call(i);
  const cpu = process.cpuUsage();
  for (let i = 0; i < CALLS; i++) await call(i);
  const used = process.cpuUsage(cpu);
  process.stdout.write(`CPU_US ${(used.user + used.system) / CALLS}\n`);
  await app.close();
}

/** Bytes V8 allocated in a child running `piece`, from its `--trace-gc-nvp` lines. */
function measure(piece: string): { cpuUs: number; allocated: number } {
  const out = execFileSync(process.execPath, ['--trace-gc-nvp', __filename, piece], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  let allocated = 0;
  for (const match of out.matchAll(/allocated=(\d+)/g)) allocated += Number(match[1]);
  const cpu = /CPU_US ([\d.]+)/.exec(out);
  return { cpuUs: cpu ? Number(cpu[1]) : NaN, allocated };
}

function main(): void {
  const baseline = measure('none').allocated;
  console.log(`per call, ${CALLS} calls after ${WARM_UP} warm-up; allocation less an idle child\n`);
  console.log('| piece | CPU µs | allocated KB |\n| --- | --- | --- |');
  for (const piece of PIECES) {
    const { cpuUs, allocated } = measure(piece);
    const kb = Math.max(0, allocated - baseline) / (CALLS + WARM_UP) / 1024;
    console.log(`| ${piece} | ${cpuUs.toFixed(2)} | ${kb.toFixed(1)} |`);
  }
}

const piece = process.argv[2];
if (piece) {
  runPiece(piece).catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
} else {
  main();
}
