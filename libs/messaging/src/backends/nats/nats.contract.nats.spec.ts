import { runBackendContract } from '../../backend';
import { deleteNatsObjects, NATS_URL, natsRunPrefix } from '../../testing/nats.fixture';
import { NatsBackend } from './index';

const PREFIX = natsRunPrefix('contract');

runBackendContract('nats', () => new NatsBackend({ servers: NATS_URL, prefix: PREFIX }), {
  servicePrefix: `nats-${PREFIX}`,
});

afterAll(async () => {
  expect(await deleteNatsObjects(PREFIX)).toHaveLength(3);
}, 30_000);
