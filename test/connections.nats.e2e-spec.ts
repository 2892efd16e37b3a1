import { NatsBackend } from '@app/messaging';
import {
  deleteNatsObjects,
  NATS_URL,
  natsRunPrefix,
} from '../libs/messaging/src/testing/nats.fixture';
import { describeSeveralConnections } from './support/several-connections';

const prefix = natsRunPrefix('ce2e');

describeSeveralConnections({
  name: 'NATS JetStream',
  run: 'ce2e',
  backend: () => new NatsBackend({ servers: NATS_URL, prefix }),
  cleanup: () => deleteNatsObjects(prefix),
});
