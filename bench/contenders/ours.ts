/**
 * Contenders "ours": `@app/messaging` through the full Nest pipeline, `@Producer` ->
 * `@Consume` and `MessageProducer.request()`, on `AmqpBackend` (quorum or classic queues) or on
 * `InMemoryBackend` (no broker). Imported only through the library's main entry.
 *
 * - One Nest 12 app per instance (`NestFactory.create`, logger errors only), wired as the README
 *   says: `connectMicroservice({ strategy: MessagingServer })`, `startAllMicroservices()`, `init()`.
 *   The producer lives in instance 0.
 * - AmqpBackend: `{ url, exchange, queueType, maxInFlightPublishes, prefetch: 100 }`, one
 *   connection per app, `maxInFlightPublishes` = the driver's window (1000; 5000 to fill the
 *   backlog); publishes are persistent, confirmed and mandatory (library defaults).
 * - `@Consume(topic, { concurrency: 100 })`: prefetch 100, ack after the handler resolved.
 * - Retry workload: `retry: { maxAttempts: 3, backoff: { initialDelayMs: 1, multiplier: 1,
 *   maxDelayMs: 1, jitter: 0 } }`, the library's durable retry (on RabbitMQ the delay is rounded up
 *   to its shortest TTL tier).
 */
import { Controller, Injectable, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Payload } from '@nestjs/microservices';
import {
  AmqpBackend,
  Consume,
  InMemoryBackend,
  MessageProducer,
  MessagingModule,
  MessagingServer,
  Producer,
} from '../../libs/messaging/src';
import { runChild } from '../shared/child';
import { packageVersion } from '../shared/measure';
import type {
  BenchMessage,
  ChildTask,
  Contender,
  MessageHandler,
  PubSubRig,
  RequestRig,
} from '../shared/protocol';
import { deleteNames } from './cleanup';

const CONCURRENCY = 100;
const TOPIC = 'bench.msg';
const RR_TOPIC = 'bench.rr';
const RETRY = {
  maxAttempts: 3,
  backoff: { initialDelayMs: 0, multiplier: 1, maxDelayMs: 0, jitter: 0 },
};

type Handler = (message: BenchMessage) => unknown;

interface Instance {
  app: INestApplication;
  producer: MessageProducer<BenchMessage>;
}

export function oursContender(task: ChildTask): Contender {
  const memory = task.contender === 'memory';
  const queueType = task.queueType ?? 'quorum';

  const backend = (name: string, inFlight: number): AmqpBackend | InMemoryBackend =>
    memory
      ? new InMemoryBackend()
      : new AmqpBackend({
          url: task.url,
          exchange: name,
          queueType,
          maxInFlightPublishes: inFlight,
          prefetch: CONCURRENCY,
        });

  /** One Nest app: MessagingModule, a producer of `topic` and, with a handler, a consumer of it. */
  const start = async (
    name: string,
    topic: string,
    inFlight: number,
    handler?: Handler,
    retry = false,
  ): Promise<Instance> => {
    @Injectable()
    class BenchProducer {
      constructor(@Producer(topic) readonly producer: MessageProducer<BenchMessage>) {}
    }
    @Controller()
    class BenchConsumer {
      @Consume(topic, { concurrency: CONCURRENCY, ...(retry ? { retry: RETRY } : {}) })
      handle(@Payload() message: BenchMessage): unknown {
        return handler?.(message);
      }
    }
    @Module({
      imports: [
        MessagingModule.forRoot({
          service: name,
          backend: backend(name, inFlight),
          concurrency: CONCURRENCY,
        }),
      ],
      controllers: handler ? [BenchConsumer] : [],
      providers: [BenchProducer],
    })
    class BenchModule {}

    const app = await NestFactory.create(BenchModule, { logger: ['error'] });
    app.connectMicroservice({ strategy: app.get(MessagingServer) }, { inheritAppConfig: true });
    await app.startAllMicroservices();
    await app.init();
    return { app, producer: app.get(BenchProducer).producer };
  };

  /** Names the library declares for `name` (README, "RabbitMQ" topology); retries use tier 100 ms. */
  const cleanup = async (name: string, topic: string): Promise<void> => {
    if (memory) return;
    const retryTier = `${name}.retry.100`;
    await deleteNames(
      task.url,
      [`${name}.${topic}`, `${name}.dead-letter`, retryTier],
      [name, retryTier],
    );
  };

  return {
    settings: [
      `@app/messaging through Nest ${packageVersion('@nestjs/core')} (@Producer -> @Consume, MessageProducer.request)`,
      memory
        ? 'InMemoryBackend (process-wide in-memory broker, no RabbitMQ); in a full run 10x the messages and warm-up of each workload, so that a run lasts long enough to measure'
        : `AmqpBackend { queueType: '${queueType}', maxInFlightPublishes: 1000 (5000 to fill the backlog), prefetch: ${CONCURRENCY} }, one connection per app; persistent, confirmed, mandatory publishes`,
      `@Consume(topic, { concurrency: ${CONCURRENCY} }): ack after the handler; one Nest app per instance, logger errors only`,
      `retry: ${JSON.stringify(RETRY)}${memory ? '' : ' (rounded up to the 100 ms TTL tier)'}`,
    ],
    supportsRetry: true,

    async pubSub(options): Promise<PubSubRig> {
      const handler: MessageHandler = options.handler;
      const instances: Instance[] = [];
      if (options.consumers === 0) {
        // Backlog fill: a consumer app declares the queue and its binding, then goes away.
        await (await start(options.name, TOPIC, options.inFlight, () => undefined)).app.close();
        instances.push(await start(options.name, TOPIC, options.inFlight));
      }
      for (let i = 0; i < options.consumers; i++) {
        instances.push(await start(options.name, TOPIC, options.inFlight, handler, options.retry));
      }
      const producer = instances[0].producer;
      return {
        publish: async (message) => {
          await producer.publish(message);
        },
        close: async () => {
          await Promise.all(instances.map((instance) => instance.app.close()));
          if (!options.keepQueue) await cleanup(options.name, TOPIC);
        },
      };
    },

    async requestReply({ name, handler }): Promise<RequestRig> {
      const { app, producer } = await start(name, RR_TOPIC, 1000, handler);
      return {
        request: (message, timeoutMs) => producer.request<{ id: number }>(message, { timeoutMs }),
        close: async () => {
          await app.close();
          await cleanup(name, RR_TOPIC);
        },
      };
    },
  };
}

if (require.main === module) runChild(oursContender);
