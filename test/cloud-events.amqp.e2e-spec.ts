import { randomUUID } from 'node:crypto';
import * as amqplib from 'amqplib';
import { AmqpBackend } from '@app/messaging';
import { BROKER_URL, deleteBrokerObjects } from '../libs/messaging/src/testing/rabbitmq.fixture';
import { describeCloudEvents, queuedTap, type RawMessage } from './support/cloud-events-scenarios';

const run = `cev${randomUUID().slice(0, 8)}`;
const namespace = `${run}-x`;

describeCloudEvents({
  name: 'RabbitMQ',
  run,
  prefix: 'cloudEvents:',
  backend: () => new AmqpBackend({ url: BROKER_URL, namespace }),
  // amqplib as any other application uses it: headers and properties, nothing of ours.
  raw: async () => {
    const conn = await amqplib.connect(BROKER_URL);
    const channel = await conn.createConfirmChannel();
    return {
      publish: async (topic, { headers, contentType, body }) => {
        channel.publish(namespace, topic, Buffer.from(body), { headers, contentType });
        await channel.waitForConfirms();
      },
      tap: async (topic) => {
        const tapChannel = await conn.createChannel();
        const { queue } = await tapChannel.assertQueue('', { exclusive: true });
        await tapChannel.bindQueue(queue, namespace, topic);
        const messages: RawMessage[] = [];
        await tapChannel.consume(
          queue,
          (msg) => {
            if (!msg) return;
            messages.push({
              headers: msg.properties.headers ?? {},
              contentType: msg.properties.contentType as string | undefined,
              contentEncoding: msg.properties.contentEncoding as string | undefined,
              body: msg.content,
            });
          },
          { noAck: true },
        );
        return queuedTap(messages, () => tapChannel.close());
      },
      close: () => conn.close(),
    };
  },
  cleanup: () => deleteBrokerObjects(run),
});
