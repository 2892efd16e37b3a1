import { jetstream } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { NatsBackend } from '@app/messaging';
import {
  deleteNatsObjects,
  NATS_URL,
  natsAdmin,
  natsRunPrefix,
} from '../libs/messaging/src/testing/nats.fixture';
import { describeCloudEvents, queuedTap, type RawMessage } from './support/cloud-events-scenarios';

const prefix = natsRunPrefix('cev');

describeCloudEvents({
  name: 'NATS JetStream',
  run: prefix.replace(/[^a-z0-9]/gi, ''),
  prefix: 'ce-',
  backend: () => new NatsBackend({ servers: NATS_URL, namespace: prefix }),
  // The NATS client as any other application uses it: a JetStream publish with headers, a plain
  // subscription on the topic's subject.
  raw: async () => {
    const { nc } = await natsAdmin();
    const js = jetstream(nc);
    return {
      publish: async (topic, { headers, contentType, body }) => {
        const h = natsHeaders();
        for (const [name, value] of Object.entries(headers)) h.set(name, value);
        if (contentType) h.set('Content-Type', contentType);
        await js.publish(`${prefix}.t.${topic}`, body, { headers: h });
      },
      tap: (topic) => {
        const messages: RawMessage[] = [];
        const sub = nc.subscribe(`${prefix}.t.${topic}`, {
          callback: (_error, msg) => {
            const headers: Record<string, string> = {};
            for (const [name, values] of msg.headers ?? []) headers[name] = values[0];
            messages.push({
              headers,
              contentType: msg.headers?.get('Content-Type') || undefined,
              contentEncoding: msg.headers?.get('Content-Encoding') || undefined,
              body: Buffer.from(msg.data),
            });
          },
        });
        // The subscription is registered with the server once the connection flushed.
        return nc.flush().then(() => queuedTap(messages, async () => sub.unsubscribe()));
      },
      close: () => nc.close(),
    };
  },
  cleanup: () => deleteNatsObjects(prefix),
});
