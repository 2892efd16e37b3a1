/**
 * Contender "Nest RMQ": the built-in RabbitMQ transport of `@nestjs/microservices` 12
 * (`Transport.RMQ`, over amqp-connection-manager), as its documentation sets it up.
 *
 * - One hybrid Nest app per consumer instance (`connectMicroservice({ transport: Transport.RMQ })`),
 *   logger errors only; a `ClientProxy` (`ClientProxyFactory.create`, its own connection) produces.
 * - Server: `{ queue, queueOptions: { durable: true, arguments: { 'x-queue-type' } },
 *   prefetchCount: 100, noAck: false, persistent: true }`; each handler acks by hand with
 *   `context.getChannelRef().ack(context.getMessage())` once it ran.
 * - Client: `{ queue, queueOptions, persistent: true }`; `emit()` (fire-and-forget) completes on the
 *   publisher confirm of amqp-connection-manager's confirm channel; `send()` (request/reply) uses
 *   direct reply-to and does not wait for the confirm. Messages go to the queue through the default
 *   exchange (the transport's default: no exchange).
 * - Sockets `noDelay: true` (`socketOptions.connectionOptions`), like every other contender.
 * - No retry feature: the retry workload is n/a.
 */
import { Controller, Logger, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  ClientProxyFactory,
  Ctx,
  EventPattern,
  MessagePattern,
  Payload,
  RmqContext,
  Transport,
  type ClientProxy,
  type RmqOptions,
} from '@nestjs/microservices';
import { lastValueFrom, timeout } from 'rxjs';
import { runChild } from '../shared/child';
import { packageVersion } from '../shared/measure';
import type { BenchMessage, ChildTask, Contender, PubSubRig, RequestRig } from '../shared/protocol';
import { deleteNames } from './cleanup';

const PREFETCH = 100;
const EVENT = 'bench.msg';
const REQUEST = 'bench.rr';

type Handler = (message: BenchMessage) => unknown;

export function nestRmqContender(task: ChildTask): Contender {
  const queueType = task.queueType ?? 'classic';
  const common = (queue: string): NonNullable<RmqOptions['options']> => ({
    urls: [task.url],
    queue,
    queueOptions: { durable: true, arguments: { 'x-queue-type': queueType } },
    persistent: true,
    socketOptions: { connectionOptions: { noDelay: true } },
  });

  /** A hybrid app whose RMQ server consumes `queue` and acks each message once handled. */
  const startServer = async (queue: string, handler: Handler): Promise<INestApplication> => {
    // Nest 12 types a handler's extra arguments as `unknown`: the context is an RmqContext.
    const ack = (context: unknown): void => {
      const rmq = context as RmqContext;
      (rmq.getChannelRef() as { ack(message: unknown): void }).ack(rmq.getMessage());
    };
    @Controller()
    class BenchConsumer {
      @EventPattern(EVENT)
      async onEvent(@Payload() message: BenchMessage, @Ctx() context: unknown): Promise<void> {
        await handler(message);
        ack(context);
      }

      @MessagePattern(REQUEST)
      onRequest(@Payload() message: BenchMessage, @Ctx() context: unknown): unknown {
        const reply = handler(message);
        ack(context);
        return reply;
      }
    }
    @Module({ controllers: [BenchConsumer] })
    class BenchModule {}

    const app = await NestFactory.create(BenchModule, { logger: ['error'] });
    app.connectMicroservice<RmqOptions>(
      {
        transport: Transport.RMQ,
        options: { ...common(queue), prefetchCount: PREFETCH, noAck: false },
      },
      { inheritAppConfig: true },
    );
    await app.startAllMicroservices();
    await app.init();
    return app;
  };

  const startClient = async (queue: string): Promise<ClientProxy> => {
    Logger.overrideLogger(['error']); // the client lives outside any app: errors only, like the apps
    const client = ClientProxyFactory.create({ transport: Transport.RMQ, options: common(queue) });
    await client.connect();
    return client;
  };

  return {
    settings: [
      `@nestjs/microservices ${packageVersion('@nestjs/microservices')} Transport.RMQ, amqp-connection-manager ${packageVersion('amqp-connection-manager')}, ${queueType} queue (default exchange)`,
      `server: prefetchCount ${PREFETCH}, noAck: false, manual ack in the handler; persistent: true; noDelay: true`,
      'client: ClientProxy emit() (resolves on confirm), send() over direct reply-to',
      'retry: n/a (no retry feature)',
    ],
    supportsRetry: false,

    async pubSub(options): Promise<PubSubRig> {
      const queue = `${options.name}.q`;
      const client = await startClient(queue); // declares the queue
      const apps: INestApplication[] = [];
      for (let i = 0; i < options.consumers; i++) {
        apps.push(await startServer(queue, options.handler));
      }
      return {
        publish: async (message) => {
          await lastValueFrom(client.emit(EVENT, message), { defaultValue: null });
        },
        close: async () => {
          await client.close();
          await Promise.all(apps.map((app) => app.close()));
          if (!options.keepQueue) await deleteNames(task.url, [queue], []);
        },
      };
    },

    async requestReply({ name, handler }): Promise<RequestRig> {
      const queue = `${name}.q`;
      const client = await startClient(queue);
      const app = await startServer(queue, handler);
      return {
        request: (message, timeoutMs) =>
          lastValueFrom(client.send<{ id: number }>(REQUEST, message).pipe(timeout(timeoutMs))),
        close: async () => {
          await client.close();
          await app.close();
          await deleteNames(task.url, [queue], []);
        },
      };
    },
  };
}

if (require.main === module) runChild(nestRmqContender);
