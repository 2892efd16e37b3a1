/**
 * Contender "raw amqplib": the reference, hand-written amqplib 2 doing what the library does, as a
 * careful user would write it.
 *
 * - One connection per instance (the producer shares instance 0's), socket `noDelay: true`.
 * - A durable topic exchange bound to a durable queue, `x-queue-type` quorum or classic.
 * - Publishes: persistent JSON, `mandatory`, on a confirm channel; a publish resolves on its confirm.
 * - Consumers: prefetch 100, manual ack after the handler resolved.
 * - Retry reference (no broker-side delay): a failed delivery is republished at once as a copy
 *   (confirmed) to its queue, then the original is acked.
 * - Request/reply: the requester publishes (persistent, confirm channel) with `replyTo` direct
 *   reply-to (`amq.rabbitmq.reply-to`, consumed no-ack); the server replies with `sendToQueue` on its
 *   consumer channel, then acks the request.
 */
import { randomUUID } from 'node:crypto';
import * as amqplib from 'amqplib';
import type { ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
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

export function rawContender(task: ChildTask): Contender {
  const queueType = task.queueType ?? 'quorum';
  const connect = async (): Promise<ChannelModel> => {
    const conn = await amqplib.connect(task.url, { noDelay: true });
    conn.on('error', (error: Error) => console.error('raw amqplib: connection error', error));
    return conn;
  };
  const declare = async (ch: ConfirmChannel, exchange: string, queue: string): Promise<void> => {
    await ch.assertExchange(exchange, 'topic', { durable: true });
    await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': queueType } });
    await ch.bindQueue(queue, exchange, 'bench.#');
  };

  return {
    settings: [
      `amqplib ${packageVersion('amqplib')}, ${queueType} queue behind a durable topic exchange`,
      'confirm channel, persistent JSON, mandatory; one connection per instance, noDelay: true',
      `prefetch ${PREFETCH}, manual ack after the handler`,
      'retry reference: republish a copy at once (confirmed), then ack the original; no delay',
      `request/reply: direct reply-to (${DIRECT_REPLY_TO}), reply with sendToQueue then ack`,
    ],
    supportsRetry: true,

    async pubSub(options: PubSubOptions): Promise<PubSubRig> {
      const exchange = options.name;
      const queue = `${options.name}.q`;
      const connections = [await connect()];
      for (let i = 1; i < options.consumers; i++) connections.push(await connect());
      const producer = watch(await connections[0].createConfirmChannel());
      // An unroutable publish is returned, then confirmed: it shows up as a lost message.
      producer.on('return', () => undefined);
      await declare(producer, exchange, queue);
      for (const conn of connections.slice(0, options.consumers)) {
        await consume(conn, queue, options.handler, options.retry);
      }
      return {
        publish: (message) => publish(producer, exchange, 'bench.msg', message, {}),
        close: async () => {
          if (!options.keepQueue) {
            await producer.deleteQueue(queue);
            await producer.deleteExchange(exchange);
          }
          await Promise.all(connections.map((c) => c.close()));
        },
      };
    },

    async requestReply({ name, handler }): Promise<RequestRig> {
      const exchange = name;
      const queue = `${name}.q`;
      const server = await connect();
      const client = await connect();
      const serverCh = watch(await server.createChannel());
      await serverCh.prefetch(PREFETCH);
      const clientCh = watch(await client.createConfirmChannel());
      await declare(clientCh, exchange, queue);
      await serverCh.consume(queue, (msg) => {
        if (!msg) return;
        const reply = handler(JSON.parse(msg.content.toString()) as BenchMessage);
        serverCh.sendToQueue(msg.properties.replyTo as string, Buffer.from(JSON.stringify(reply)), {
          correlationId: msg.properties.correlationId as string,
          contentType: 'application/json',
        });
        serverCh.ack(msg);
      });
      const pending = new Map<string, (reply: ConsumeMessage) => void>();
      await clientCh.consume(
        DIRECT_REPLY_TO,
        (msg) => msg && pending.get(msg.properties.correlationId as string)?.(msg),
        { noAck: true },
      );
      return {
        request: (message, timeoutMs) =>
          new Promise((resolve, reject) => {
            const correlationId = randomUUID();
            const timer = setTimeout(() => {
              pending.delete(correlationId);
              reject(new Error(`request timed out after ${timeoutMs} ms`));
            }, timeoutMs);
            pending.set(correlationId, (msg) => {
              pending.delete(correlationId);
              clearTimeout(timer);
              resolve(JSON.parse(msg.content.toString()) as { id: number });
            });
            publish(clientCh, exchange, 'bench.rr', message, {
              replyTo: DIRECT_REPLY_TO,
              correlationId,
            }).catch((error: Error) => {
              pending.delete(correlationId);
              clearTimeout(timer);
              reject(error);
            });
          }),
        close: async () => {
          await clientCh.deleteQueue(queue);
          await clientCh.deleteExchange(exchange);
          await Promise.all([server.close(), client.close()]);
        },
      };
    },
  };
}

/** Logs why the broker closed a channel (the orchestrator keeps the child's output in its log). */
function watch<C extends amqplib.Channel>(ch: C): C {
  ch.on('error', (error: Error) => console.error('raw amqplib: channel error', error));
  return ch;
}

function publish(
  ch: ConfirmChannel,
  exchange: string,
  routingKey: string,
  message: BenchMessage | Buffer,
  extra: amqplib.Options.Publish,
): Promise<void> {
  const body = Buffer.isBuffer(message) ? message : Buffer.from(JSON.stringify(message));
  return new Promise<void>((resolve, reject) => {
    ch.publish(
      exchange,
      routingKey,
      body,
      {
        persistent: true,
        mandatory: true,
        contentType: 'application/json',
        messageId: randomUUID(),
        ...extra,
      },
      (err: unknown) => (err ? reject(new Error('publish nacked by the broker')) : resolve()),
    );
  });
}

/** One consumer instance on `conn`: prefetch, manual acks, the reference's retry by republishing. */
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
      await new Promise<void>((resolve, reject) =>
        republisher.sendToQueue(
          queue,
          msg.content,
          {
            persistent: true,
            contentType: 'application/json',
            messageId: msg.properties.messageId as string,
            headers: { 'x-attempt': attempt },
          },
          (err: unknown) => (err ? reject(new Error('republish nacked')) : resolve()),
        ),
      );
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
