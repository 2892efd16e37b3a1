/**
 * Contender "golevelup": `@golevelup/nestjs-rabbitmq` 9 on NestJS 11. It lives in its own package
 * (`bench/golevelup`, own package.json and lock) and is compiled to `bench/golevelup/dist`, so that
 * Node resolves `@nestjs/*` from `bench/golevelup/node_modules` (Nest 11), never the root's Nest 12.
 *
 * - One Nest 11 application context (`NestFactory.createApplicationContext`, logger errors only).
 *   golevelup keeps its connections in a static manager and bootstraps handlers once per process,
 *   so N consumer instances are N named connections (`RabbitMQModule.forRoot({ name })`) in that
 *   one context, each with its own `@RabbitSubscribe({ connection })` on the same queue; the
 *   producer is connection 0.
 * - `{ prefetchCount: 100, defaultPublishOptions: { persistent: true } }`, a durable topic exchange,
 *   a durable queue with `x-queue-type`, sockets `noDelay: true`.
 * - `AmqpConnection.publish()` goes through amqp-connection-manager's channel wrapper, a confirm
 *   channel by default: it resolves on the broker's confirm.
 * - Ack semantics: golevelup's default, ack after the handler resolved.
 * - Retry workload: `errorHandler: requeueErrorHandler` (nack with requeue: immediate redelivery,
 *   no delay and no attempt count); golevelup has no delayed retry of its own.
 * - Request/reply: `@RabbitRPC` and `AmqpConnection.request()` over direct reply-to, one connection.
 */
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  AmqpConnection,
  AmqpConnectionManager,
  RabbitMQModule,
  RabbitRPC,
  RabbitSubscribe,
  requeueErrorHandler,
  type RabbitMQConfig,
} from '@golevelup/nestjs-rabbitmq';
import * as amqplib from 'amqplib';
import { runChild } from '../../shared/child';
import { packageVersion } from '../../shared/measure';
import type {
  BenchMessage,
  ChildTask,
  Contender,
  PubSubRig,
  RequestRig,
} from '../../shared/protocol';

const PREFETCH = 100;

export function golevelupContender(task: ChildTask): Contender {
  const queueType = task.queueType ?? 'classic';
  const queueOptions = { durable: true, arguments: { 'x-queue-type': queueType } };

  const config = (name: string, exchange: string): RabbitMQConfig => ({
    name,
    uri: task.url,
    prefetchCount: PREFETCH,
    exchanges: [{ name: exchange, type: 'topic', options: { durable: true } }],
    defaultPublishOptions: { persistent: true },
    connectionInitOptions: { wait: true, timeout: 10_000 },
    connectionManagerOptions: { connectionOptions: { noDelay: true } },
  });

  const start = async (
    exchange: string,
    subscribers: readonly (new (...args: never[]) => unknown)[],
    connections: readonly string[],
    queues: RabbitMQConfig['queues'] = [],
  ): Promise<{ app: INestApplicationContext; connection: (name: string) => AmqpConnection }> => {
    @Module({
      imports: connections.map((name) =>
        RabbitMQModule.forRoot({ ...config(name, exchange), queues }),
      ),
      providers: [...subscribers],
    })
    class BenchModule {}
    const app = await NestFactory.createApplicationContext(BenchModule, { logger: ['error'] });
    const manager = app.get(AmqpConnectionManager, { strict: false });
    return {
      app,
      connection: (name) => {
        const found = manager.getConnection(name);
        if (!found) throw new Error(`no golevelup connection named ${name}`);
        return found;
      },
    };
  };

  const cleanup = async (queue: string, exchange: string): Promise<void> => {
    const conn = await amqplib.connect(task.url);
    const ch = await conn.createChannel();
    await ch.deleteQueue(queue);
    await ch.deleteExchange(exchange);
    await conn.close();
  };

  return {
    settings: [
      `@golevelup/nestjs-rabbitmq ${packageVersion('@golevelup/nestjs-rabbitmq')} on Nest ${packageVersion('@nestjs/core')}, amqplib ${packageVersion('amqplib')}, ${queueType} queue behind a durable topic exchange`,
      `prefetchCount ${PREFETCH}, persistent publishes on a confirm channel (publish() resolves on confirm), ack after the handler; noDelay: true`,
      'N consumer instances = N named connections in one Nest application context (golevelup bootstraps once per process)',
      'retry: requeueErrorHandler (nack + requeue at once, no delay, no attempt limit)',
      'request/reply: @RabbitRPC + AmqpConnection.request() over direct reply-to',
    ],
    supportsRetry: true,

    async pubSub(options): Promise<PubSubRig> {
      const exchange = options.name;
      const queue = `${options.name}.q`;
      const names = Array.from({ length: Math.max(1, options.consumers) }, (_, i) => `c${i}`);
      const subscribers = names.slice(0, options.consumers).map((connection) => {
        @Injectable()
        class BenchSubscriber {
          @RabbitSubscribe({
            connection,
            exchange,
            routingKey: 'bench.#',
            queue,
            queueOptions,
            ...(options.retry ? { errorHandler: requeueErrorHandler } : {}),
          })
          async handle(message: BenchMessage): Promise<void> {
            await options.handler(message);
          }
        }
        return BenchSubscriber;
      });
      // With no consumer the queue is declared from the module config instead.
      const declared =
        options.consumers === 0
          ? [{ name: queue, options: queueOptions, exchange, routingKey: 'bench.#' }]
          : [];
      const { app, connection } = await start(exchange, subscribers, names, declared);
      const producer = connection('c0');
      return {
        publish: async (message) => {
          await producer.publish(exchange, 'bench.msg', message);
        },
        close: async () => {
          await app.close();
          if (!options.keepQueue) await cleanup(queue, exchange);
        },
      };
    },

    async requestReply({ name, handler }): Promise<RequestRig> {
      const exchange = name;
      const queue = `${name}.q`;
      @Injectable()
      class BenchResponder {
        @RabbitRPC({ exchange, routingKey: 'bench.rr', queue, queueOptions })
        respond(message: BenchMessage): { id: number } {
          return handler(message);
        }
      }
      const { app, connection } = await start(exchange, [BenchResponder], ['c0']);
      const client = connection('c0');
      return {
        request: (message, timeoutMs) =>
          client.request<{ id: number }>({
            exchange,
            routingKey: 'bench.rr',
            payload: message,
            timeout: timeoutMs,
          }),
        close: async () => {
          await app.close();
          await cleanup(queue, exchange);
        },
      };
    },
  };
}

if (require.main === module) runChild(golevelupContender);
