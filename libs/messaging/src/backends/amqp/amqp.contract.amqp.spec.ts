import { randomUUID } from 'node:crypto';
import { runBackendContract } from '../../testing';
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

afterAll(() => deleteBrokerObjects(RUN), 30_000);
