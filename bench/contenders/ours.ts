/**
 * Contenders "ours": nest-messaging through the full Nest pipeline, `@Producer` -> `@Consume` and
 * `MessageProducer.request()`, on `AmqpBackend` (quorum or classic queues), `RedisStreamsBackend`,
 * `NatsBackend` or `InMemoryBackend` (no broker).
 *
 * - The compiled package, as an application runs it: plain Node requires `nest-messaging` (and
 *   `nest-messaging/redis`, `nest-messaging/nats`) from libs/messaging, built by `npm run build:lib`,
 *   through the package's own `exports` map; nothing of the library is compiled with the bench (its
 *   types come from the sources or the build's declarations, erased at compile time).
 * - Every option of the library at its default, except the tuning below: the bench never turns a
 *   default feature off (request context, metrics, tracing hooks, volatile requests...).
 * - One Nest 12 app per instance (`NestFactory.create`, logger errors only), wired as the README
 *   says: `connectMicroservice({ strategy: MessagingServer })`, `startAllMicroservices()`, `init()`.
 *   The producer lives in instance 0.
 * - AmqpBackend: `{ url, namespace, queueType, maxInFlightPublishes, prefetch: 100 }`, per app a
 *   publishing connection and, as it subscribes, a consuming one (the default),
 *   `maxInFlightPublishes` = the driver's window (1000; 5000 to fill the backlog); events are
 *   persistent, confirmed and mandatory (library defaults).
 * - RedisStreamsBackend: `{ url, namespace }` (the workload's unique name); NatsBackend:
 *   `{ servers, namespace }`. Each app has its own backend (its own connections); every key (stream)
 *   of the workload starts with the namespace and is deleted at close.
 * - `@Consume(topic, { concurrency: 100 })`: at most 100 handlers at once per app, ack after the
 *   handler resolved.
 * - Batch workloads (`ff-256B-x1-batch`): `@Consume(topic, { concurrency: 2, batch })`, the handler
 *   called with an array that it loops over; each message acked on its own after the batch ran.
 * - Requests: `request(payload, { timeoutMs })`, volatile (the library's default); the
 *   `ours-durable-<queueType>` contenders send `request(payload, { timeoutMs, durable: true })`.
 * - Retry workload: `retry: { maxAttempts: 3, backoff: { initialDelayMs: 0, multiplier: 1,
 *   maxDelayMs: 0, jitter: 0 } }`, the library's durable retry (on RabbitMQ the delay is rounded up
 *   to its shortest TTL tier).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { Controller, Injectable, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Payload } from '@nestjs/microservices';
import type * as Messaging from '@app/messaging';
import type { MessageProducer } from '@app/messaging';
import type * as NatsEntry from '@app/messaging/nats';
import type * as RedisEntry from '@app/messaging/redis';
import type * as JetStream from '@nats-io/jetstream';
import type * as NatsCore from '@nats-io/transport-node';
import type * as IoRedis from 'ioredis';
import { runChild } from '../shared/child';
import { packageVersion } from '../shared/measure';
import type {
  BatchSpec,
  BenchMessage,
  ChildTask,
  Contender,
  MessageHandler,
  PubSubRig,
  RequestRig,
} from '../shared/protocol';
import { deleteNames, deleteNatsStreams, deleteRedisKeys } from './cleanup';

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

/** The package folder: dist/bench/bench/contenders/ours.js -> the repository -> libs/messaging. */
const PACKAGE = join(resolve(__dirname, '../../../..'), 'libs/messaging');
/**
 * `require` as seen from inside the package: `nest-messaging` resolves to the package itself
 * through its `exports` map (a self-reference), exactly the files an installed copy would load.
 */
const fromPackage = createRequire(join(PACKAGE, 'package.json'));
const { version: PACKAGE_VERSION } = JSON.parse(
  readFileSync(join(PACKAGE, 'package.json'), 'utf8'),
) as { version: string };

/**
 * Loads a module when first needed: a child on RabbitMQ or in memory never loads the Redis and NATS
 * entries nor their clients, so its peak RSS (reported) is what it was before they existed.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = <T>(id: string): T => require(id) as T;
const loadPackage = <T>(entry: string): T => {
  try {
    return fromPackage(entry) as T;
  } catch (error) {
    throw new Error(
      `cannot load ${entry} from ${PACKAGE}: build it first (npm run build:lib; npm run bench does)`,
      { cause: error },
    );
  }
};
const { AmqpBackend, Consume, InMemoryBackend, MessagingModule, MessagingServer, Producer } =
  loadPackage<typeof Messaging>('nest-messaging');

type Backend =
  | Messaging.AmqpBackend
  | RedisEntry.RedisStreamsBackend
  | NatsEntry.NatsBackend
  | Messaging.InMemoryBackend;

export function oursContender(task: ChildTask): Contender {
  const memory = task.contender === 'memory';
  const broker = memory ? undefined : (task.broker ?? 'rabbitmq');
  const queueType = task.queueType ?? 'quorum';

  /** A backend for one app; `name` is the workload's unique name (its namespace). */
  const backend = (name: string, inFlight: number): Backend => {
    switch (broker) {
      case undefined:
        return new InMemoryBackend();
      case 'redis': {
        const { RedisStreamsBackend } = loadPackage<typeof RedisEntry>('nest-messaging/redis');
        return new RedisStreamsBackend({ url: task.url, namespace: name });
      }
      case 'nats': {
        const { NatsBackend } = loadPackage<typeof NatsEntry>('nest-messaging/nats');
        return new NatsBackend({ servers: task.url, namespace: name });
      }
      case 'rabbitmq':
        return new AmqpBackend({
          url: task.url,
          namespace: name,
          queueType,
          maxInFlightPublishes: inFlight,
          prefetch: CONCURRENCY,
        });
    }
  };

  /** One Nest app: MessagingModule, a producer of `topic` and, with a handler, a consumer of it. */
  const start = async (
    name: string,
    topic: string,
    inFlight: number,
    handler?: Handler,
    retry = false,
    batch?: BatchSpec,
    ordered = false,
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
    @Controller()
    class BenchOrderedConsumer {
      @Consume(topic, { concurrency: CONCURRENCY, ordered: true })
      handle(@Payload() message: BenchMessage): unknown {
        return handler?.(message);
      }
    }
    @Controller()
    class BenchBatchConsumer {
      // Two batches at once, so that one fills while the other runs: 2 × size messages in flight.
      @Consume(topic, { concurrency: 2, batch: batch ?? { size: 1, maxWaitMs: 0 } })
      handle(@Payload() messages: BenchMessage[]): void {
        for (const message of messages) handler?.(message);
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
      controllers: handler
        ? [batch ? BenchBatchConsumer : ordered ? BenchOrderedConsumer : BenchConsumer]
        : [],
      providers: [BenchProducer],
    })
    class BenchModule {}

    const app = await NestFactory.create(BenchModule, { logger: ['error'] });
    app.connectMicroservice({ strategy: app.get(MessagingServer) }, { inheritAppConfig: true });
    await app.startAllMicroservices();
    await app.init();
    return { app, producer: app.get(BenchProducer).producer };
  };

  /**
   * Deletes what the library declared for `name`: on RabbitMQ the names of its README ("RabbitMQ"
   * topology; retries use tier 100 ms), on Redis every key `<name>:*`, on NATS every stream
   * `<name>-*` (the prefix is the workload's own).
   */
  const cleanup = async (name: string, topic: string): Promise<void> => {
    switch (broker) {
      case undefined:
        return;
      case 'redis': {
        const { Redis } = load<typeof IoRedis>('ioredis');
        const redis = new Redis(task.url, { lazyConnect: true });
        await redis.connect();
        try {
          await deleteRedisKeys(redis, `${name}:`);
        } finally {
          await redis.quit();
        }
        return;
      }
      case 'nats': {
        const nc = await load<typeof NatsCore>('@nats-io/transport-node').connect({
          servers: task.url,
        });
        try {
          const { jetstreamManager } = load<typeof JetStream>('@nats-io/jetstream');
          await deleteNatsStreams(await jetstreamManager(nc), `${name}-`);
        } finally {
          await nc.close();
        }
        return;
      }
      case 'rabbitmq': {
        // The route's request queue (`<exchange>.requests.<queue>`) went with its consumers. Retries
        // wait in the binary delay levels (amqp-delay-levels.ts), declared with the first one.
        const levels = Array.from({ length: 32 }, (_, n) => `${name}.delay-level.${n}`);
        await deleteNames(
          task.url,
          [`${name}.${topic}`, `${name}.dead-letter`, ...levels],
          [name, `${name}.requests`, `${name}.delay-delivery`, ...levels],
        );
      }
    }
  };

  const durable = task.requests === 'durable';
  const backendSettings: Record<string, string> = {
    memory:
      'InMemoryBackend (process-wide in-memory broker, no broker); in a full run 10x the messages and warm-up of each workload, so that a run lasts long enough to measure',
    rabbitmq: `AmqpBackend { url, namespace: <workload>, queueType: '${queueType}', maxInFlightPublishes: 1000 (5000 to fill the backlog), prefetch: ${CONCURRENCY} }, per app a publishing connection and a consuming one (the default); events persistent, confirmed, mandatory (defaults)`,
    redis: `RedisStreamsBackend { url, namespace: <workload> } (ioredis ${packageVersion('ioredis')}), other options default; one backend (its connections) per app`,
    nats: `NatsBackend { servers, namespace: <workload> } (@nats-io/jetstream ${packageVersion('@nats-io/jetstream')}), other options default; one backend (its connection) per app`,
  };

  return {
    settings: [
      `nest-messaging ${PACKAGE_VERSION} compiled (libs/messaging/dist, required through its exports map by plain Node) through Nest ${packageVersion('@nestjs/core')} (@Producer -> @Consume, MessageProducer.request)`,
      `MessagingModule.forRoot({ service, backend, concurrency: ${CONCURRENCY} }), every other option at its default`,
      backendSettings[broker ?? 'memory'],
      `@Consume(topic, { concurrency: ${CONCURRENCY} }): ack after the handler; one Nest app per instance, logger errors only`,
      durable
        ? "requests: request(payload, { timeoutMs, durable: true }) (persistent and confirmed, into the route's durable queue)"
        : 'requests: request(payload, { timeoutMs }), volatile (the default)',
      `batch workloads: @Consume(topic, { concurrency: 2, batch: { size, maxWaitMs } }) (2 × size messages in flight); the handler loops over the array`,
      `ordered workloads: @Consume(topic, { concurrency: ${CONCURRENCY}, ordered: true }) (${CONCURRENCY} × 4 messages in flight), each publish with orderingKey k<id % keys>`,
      `retry: ${JSON.stringify(RETRY)}`,
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
        instances.push(
          await start(
            options.name,
            TOPIC,
            options.inFlight,
            handler,
            options.retry,
            options.batch,
            options.orderedKeys !== undefined,
          ),
        );
      }
      const producer = instances[0].producer;
      const keys = options.orderedKeys;
      return {
        publish: keys
          ? async (message) => {
              await producer.publish(message, { orderingKey: `k${message.id % keys}` });
            }
          : async (message) => {
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
        request: (message, timeoutMs) =>
          producer.request<{ id: number }>(
            message,
            durable ? { timeoutMs, durable } : { timeoutMs },
          ),
        close: async () => {
          await app.close();
          await cleanup(name, RR_TOPIC);
        },
      };
    },
  };
}

if (require.main === module) runChild(oursContender);
