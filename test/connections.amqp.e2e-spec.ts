import { randomUUID } from 'node:crypto';
import { AmqpBackend } from '@app/messaging';
import {
  BROKER_URL,
  deleteBrokerObjects,
  queuesContaining,
} from '../libs/messaging/src/testing/rabbitmq.fixture';
import { describeSeveralConnections } from './support/several-connections';

const run = `ce2e${randomUUID().slice(0, 8)}`;

describeSeveralConnections({
  name: 'RabbitMQ',
  run,
  backend: () => new AmqpBackend({ url: BROKER_URL, exchange: `${run}-x` }),
  cleanup: async () => {
    await deleteBrokerObjects(run);
    expect(await queuesContaining(run)).toEqual([]);
  },
});
