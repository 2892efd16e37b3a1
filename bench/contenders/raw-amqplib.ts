/**
 * Contenders "raw amqplib": the references on RabbitMQ, hand-written amqplib 2 as a careful user
 * writes it. One child file, three contenders (`ChildTask.requests` tells which):
 *
 * | contender                 | workloads                          | what it is                                  |
 * | ------------------------- | ---------------------------------- | ------------------------------------------- |
 * | `raw-<queueType>`         | fire-and-forget, retry, backlog    | publish straight to a durable queue         |
 * | `raw-rpc`                 | request/reply                      | volatile RPC: the requests' reference       |
 * | `raw-durable-rpc-<type>`  | request/reply                      | RPC through a durable queue, confirmed      |
 *
 * Fire-and-forget (`raw-<queueType>`):
 * - The producer on a connection of its own, each consumer instance on its own (x1: 2 connections,
 *   x4: 5), sockets `noDelay: true`.
 * - A durable queue, `x-queue-type` quorum or classic, and no exchange: publishes go through the
 *   default exchange straight to the queue (`sendToQueue`), persistent JSON, `mandatory`, on a
 *   confirm channel; a publish resolves on its own confirm.
 * - Consumers: prefetch 100, each message acked on its own once the handler resolved.
 * - Retry reference (no broker-side delay): a failed delivery is sent again as a copy (confirmed)
 *   to its queue, then the original is acked.
 *
 * Request/reply, on two connections (server and requester), `noDelay: true`, the requester on
 * direct reply-to (`amq.rabbitmq.reply-to`, consumed no-ack), a correlation id and a timer per
 * call; the server replies with `sendToQueue` on its consumer channel (prefetch 100), then acks:
 * - `raw-rpc`, volatile: a non-durable, auto-delete classic server queue; requests are
 *   non-persistent, `mandatory` (nobody consuming: the broker returns it and the call fails at once),
 *   expire with the call's timeout, and are not confirmed. The queue type does not apply.
 * - `raw-durable-rpc-<type>`: a durable server queue of that type; requests persistent, mandatory,
 *   on a confirm channel (a nack fails the call), like an event.
 */
import { randomUUID } from 'node:crypto';
import * as amqplib from 'amqplib';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { runChild } from '../shared/child';
import { packageVersion } from '../shared/measure';
import type {
  BenchMessage,
  ChildTask,
  Contender,
  MessageHandler,
  PubSubOptions,
  PubSubRig,
  RequestRig,
} from '../shared/protocol';

const PREFETCH = 100;
const DIRECT_REPLY_TO = 'amq.rabbitmq.reply-to';
const JSON_TYPE = 'application/json';

export function rawContender(task: ChildTask): Contender {
  const queueType = task.queueType ?? 'quorum';
  const connect = async (): Promise<ChannelModel> => {
    const conn = await amqplib.connect(task.url, { noDelay: true });
    conn.on('error', (error: Error) => console.error('raw amqplib: connection error', error));
    return conn;
  };
  const version = `amqplib ${packageVersion('amqplib')}`;
  const durable = task.requests === 'durable';
  const settings =
    task.requests === undefined
      ? [
          `${version}, a durable ${queueType} queue, no exchange: sendToQueue through the default exchange`,
          'the producer on a connection of its own, one connection per consumer instance (x1: 2, x4: 5); noDelay: true',
          'confirm channel, persistent JSON, mandatory; a publish resolves on its own confirm',
          `prefetch ${PREFETCH}, each message acked on its own after the handler`,
          'retry reference: send a copy to the queue at once (confirmed), then ack the original; no delay',
        ]
      : [
          durable
            ? `${version}, durable RPC: a durable ${queueType} server queue; requests persistent, mandatory, on a confirm channel (like an event)`
            : `${version}, volatile RPC: a non-durable auto-delete classic server queue; requests non-persistent, mandatory (refused at once when nobody consumes), expiring with the call's timeout, not confirmed`,
          'server and requester on a connection each, noDelay: true; requests through the default exchange (sendToQueue)',
          `direct reply-to (${DIRECT_REPLY_TO}, no-ack), a correlation id and a timer per call; server prefetch ${PREFETCH}, replies with sendToQueue, then acks`,
        ];

  return {
    settings,
    supportsRetry: true,

    async pubSub(options: PubSubOptions): Promise<PubSubRig> {
      const queue = `${options.name}.q`;
      const producerConn = await connect();
      const consumerConns: ChannelModel[] = [];
      for (let i = 0; i < options.consumers; i++) consumerConns.push(await connect());
      const producer = watch(await producerConn.createConfirmChannel());
      // An unroutable publish is returned, then confirmed: it shows up as a lost message.
      producer.on('return', () => undefined);
      await producer.assertQueue(queue, {
        durable: true,
        arguments: { 'x-queue-type': queueType },
      });
      for (const conn of consumerConns) await consume(conn, queue, options.handler, options.retry);
      return {
        publish: (message) => send(producer, queue, Buffer.from(JSON.stringify(message)), {}),
        close: async () => {
          if (!options.keepQueue) await producer.deleteQueue(queue);
          await Promise.all([producerConn, ...consumerConns].map((c) => c.close()));
        },
      };
    },

    async requestReply({ name, handler }): Promise<RequestRig> {
      const queue = `${name}.rpc`;
      const server = await connect();
      const client = await connect();
      const serverCh = watch(await server.createChannel());
      await serverCh.assertQueue(
        queue,
        durable
          ? { durable: true, arguments: { 'x-queue-type': queueType } }
          : { durable: false, autoDelete: true, arguments: { 'x-queue-type': 'classic' } },
      );
      await serverCh.prefetch(PREFETCH);
      await serverCh.consume(queue, (msg) => {
        if (!msg) return;
        const reply = handler(JSON.parse(msg.content.toString()) as BenchMessage);
        serverCh.sendToQueue(msg.properties.replyTo as string, Buffer.from(JSON.stringify(reply)), {
          correlationId: msg.properties.correlationId as string,
          contentType: JSON_TYPE,
        });
        serverCh.ack(msg);
      });

      const clientCh = watch(
        durable ? await client.createConfirmChannel() : await client.createChannel(),
      );
      const pending = new Map<string, Call>();
      const settle = (correlationId: string, error?: Error, msg?: ConsumeMessage): void => {
        const call = pending.get(correlationId);
        if (!call) return;
        pending.delete(correlationId);
        clearTimeout(call.timer);
        if (error) call.reject(error);
        else call.resolve(JSON.parse(msg!.content.toString()) as { id: number });
      };
      clientCh.on('return', (msg: ConsumeMessage) =>
        settle(
          msg.properties.correlationId as string,
          new Error(`request unroutable: nobody consumes ${queue}`),
        ),
      );
      await clientCh.consume(
        DIRECT_REPLY_TO,
        (msg) => msg && settle(msg.properties.correlationId as string, undefined, msg),
        { noAck: true },
      );
      return {
        request: (message, timeoutMs) =>
          new Promise((resolve, reject) => {
            const correlationId = randomUUID();
            const timer = setTimeout(
              () => settle(correlationId, new Error(`request timed out after ${timeoutMs} ms`)),
              timeoutMs,
            );
            pending.set(correlationId, { resolve, reject, timer });
            const body = Buffer.from(JSON.stringify(message));
            const properties = { replyTo: DIRECT_REPLY_TO, correlationId };
            if (durable) {
              send(clientCh as ConfirmChannel, queue, body, properties).catch((error: Error) =>
                settle(correlationId, error),
              );
            } else {
              clientCh.sendToQueue(queue, body, {
                ...properties,
                contentType: JSON_TYPE,
                mandatory: true,
                expiration: String(timeoutMs),
              });
            }
          }),
        close: async () => {
          await serverCh.deleteQueue(queue);
          await Promise.all([server.close(), client.close()]);
        },
      };
    },
  };
}

interface Call {
  resolve(reply: { id: number }): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/** Logs why the broker closed a channel (the orchestrator keeps the child's output in its log). */
function watch<C extends Channel>(ch: C): C {
  ch.on('error', (error: Error) => console.error('raw amqplib: channel error', error));
  return ch;
}

/** A persistent, mandatory JSON message to `queue`; resolves on its confirm. */
function send(
  ch: ConfirmChannel,
  queue: string,
  body: Buffer,
  extra: amqplib.Options.Publish,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    ch.sendToQueue(
      queue,
      body,
      {
        persistent: true,
        mandatory: true,
        contentType: JSON_TYPE,
        messageId: randomUUID(),
        ...extra,
      },
      (err: unknown) => (err ? reject(new Error('publish nacked by the broker')) : resolve()),
    );
  });
}

/** One consumer instance on `conn`: prefetch, an ack per message, the reference's retry. */
async function consume(
  conn: ChannelModel,
  queue: string,
  handler: MessageHandler,
  retry: boolean,
): Promise<void> {
  const ch = watch(await conn.createChannel());
  await ch.prefetch(PREFETCH);
  const republisher = retry ? watch(await conn.createConfirmChannel()) : undefined;
  const onMessage = async (msg: ConsumeMessage): Promise<void> => {
    try {
      await handler(JSON.parse(msg.content.toString()) as BenchMessage);
    } catch (error) {
      if (!republisher) throw error;
      const attempt = Number(msg.properties.headers?.['x-attempt'] ?? 1) + 1;
      await send(republisher, queue, msg.content, {
        messageId: msg.properties.messageId as string,
        headers: { 'x-attempt': attempt },
      });
    }
    ch.ack(msg);
  };
  await ch.consume(queue, (msg) => {
    if (!msg) return;
    onMessage(msg).catch((error: unknown) => {
      console.error('raw consumer: unhandled failure', error);
      ch.nack(msg, false, true);
    });
  });
}

if (require.main === module) runChild(rawContender);
