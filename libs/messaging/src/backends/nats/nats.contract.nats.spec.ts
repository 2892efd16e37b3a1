import { runBackendContract } from '../../testing';
import { jetstream } from '@nats-io/jetstream';
import { runForeignIdContract } from '../../testing/foreign-id-contract';
import { deleteNatsObjects, NATS_URL, natsAdmin, natsRunPrefix } from '../../testing/nats.fixture';
import { tcpProxy } from './nats-proxy.fixture';
import { NatsBackend } from './index';

const PREFIX = natsRunPrefix('contract');

runBackendContract('nats', () => new NatsBackend({ servers: NATS_URL, prefix: PREFIX }), {
  servicePrefix: `nats-${PREFIX}`,
  exclusive: {
    // JetStream keeps no kind of consumer with a route: an exclusive queue is one with a lease.
    refusesMismatch: false,
    // A process that dies stops renewing its lease and keeping its deliveries alive, as one whose
    // link to the server went dead does.
    crashable: async () => {
      const proxy = await tcpProxy(Number(new URL(NATS_URL).port || 4222));
      const servers = `nats://127.0.0.1:${proxy.port}`;
      const backend = new NatsBackend({ servers, prefix: PREFIX });
      return { backend, crash: () => proxy.blackhole(), dispose: () => proxy.close() };
    },
  },
});

// A foreign message is known by its stream and stream sequence.
runForeignIdContract('nats', () => new NatsBackend({ servers: NATS_URL, prefix: PREFIX }), {
  servicePrefix: `nats-${PREFIX}`,
  identicalMessagesShareId: false,
  foreignProducer: async () => {
    const { nc } = await natsAdmin();
    const js = jetstream(nc);
    return {
      // A plain JetStream publish: no Nats-Msg-Id, no headers.
      publish: async (topic, body) => {
        await js.publish(`${PREFIX}.t.${topic}`, body);
      },
      close: () => nc.close(),
    };
  },
});

afterAll(async () => {
  // The three streams of the prefix, and the leases of its exclusive routes.
  expect(await deleteNatsObjects(PREFIX)).toHaveLength(4);
}, 30_000);
