import { randomUUID } from 'node:crypto';
import { runBackendContract } from '../../backend';
import { BROKER_URL, deleteBrokerObjects } from '../../testing/rabbitmq.fixture';
import { AmqpBackend } from './index';

const RUN = randomUUID().slice(0, 8);

runBackendContract(
  'amqp',
  () => new AmqpBackend({ url: BROKER_URL, exchange: `contract-${RUN}` }),
  {
    servicePrefix: `amqp-${RUN}`,
  },
);

afterAll(() => deleteBrokerObjects(RUN), 30_000);
