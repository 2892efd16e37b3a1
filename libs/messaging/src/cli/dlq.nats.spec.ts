import { NatsBackend } from '../backends/nats';
import { deleteNatsObjects, NATS_URL, natsRunPrefix } from '../testing/nats.fixture';
import { describeDlqOnBroker } from './dlq-broker.fixture';

const namespace = natsRunPrefix('cli');

describeDlqOnBroker({
  name: 'NATS JetStream',
  url: NATS_URL,
  namespace,
  backend: () => new NatsBackend({ servers: NATS_URL, prefix: namespace }),
  cleanup: async () => {
    await deleteNatsObjects(namespace);
  },
});
