import { NatsBackend } from '@app/messaging';
import {
  deleteNatsObjects,
  NATS_URL,
  natsRunPrefix,
} from '../libs/messaging/src/testing/nats.fixture';
import { describeOrdersOnBroker } from './support/orders-on-broker';

/** The sample services on NATS JetStream; every stream this run makes starts with its prefix. */
const namespace = natsRunPrefix('oe2e');

describeOrdersOnBroker({
  name: 'NATS JetStream',
  url: NATS_URL,
  namespace,
  backend: () => new NatsBackend({ servers: NATS_URL, prefix: namespace }),
  cleanup: async () => {
    await deleteNatsObjects(namespace);
  },
});
