import { randomUUID } from 'node:crypto';
import * as amqplib from 'amqplib';
import { runBackendContract } from '../../testing';
import { runForeignIdContract } from '../../testing/foreign-id-contract';
import { closeConnectionsNamed } from '../../testing/amqp-test.fixture';
import { BROKER_URL, deleteBrokerObjects } from '../../testing/rabbitmq.fixture';
import { AmqpBackend } from './index';

const RUN = randomUUID().slice(0, 8);

runBackendContract(
  'amqp',
  () => new AmqpBackend({ url: BROKER_URL, exchange: `contract-${RUN}` }),
  {
    servicePrefix: `amqp-${RUN}`,
    exclusive: {
      // What RabbitMQ sees of a crash: the connections go. The backend reconnects, as a standby.
      crashable: async () => {
        const connectionName = `contract-crash-${randomUUID().slice(0, 8)}`;
        const exchange = `contract-${RUN}`;
        const backend = new AmqpBackend({ url: BROKER_URL, exchange, connectionName });
        return { backend, crash: () => closeConnectionsNamed(connectionName) };
      },
    },
  },
);

// RabbitMQ numbers no message: a foreign one is known by its content, so identical ones share an id.
runForeignIdContract(
  'amqp',
  () => new AmqpBackend({ url: BROKER_URL, exchange: `contract-${RUN}` }),
  {
    servicePrefix: `amqp-${RUN}`,
    identicalMessagesShareId: true,
    foreignProducer: async () => {
      const conn = await amqplib.connect(BROKER_URL);
      const channel = await conn.createConfirmChannel();
      return {
        // A plain basic.publish: no message_id, no properties.
        publish: async (topic, body) => {
          channel.publish(`contract-${RUN}`, topic, Buffer.from(body));
          await channel.waitForConfirms();
        },
        close: () => conn.close(),
      };
    },
  },
);

afterAll(() => deleteBrokerObjects(RUN), 30_000);
