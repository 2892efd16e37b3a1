import { randomUUID } from 'node:crypto';
import { InMemoryBackend, InMemoryBroker } from '@app/messaging';
import { describeCloudEvents, queuedTap, type RawMessage } from './support/cloud-events-scenarios';

const broker = new InMemoryBroker();
let taps = 0;

// The embedded broker has no client but the backend: a second backend on the same broker stands in
// for another application, with no id or header of the library's.
describeCloudEvents({
  name: 'the in-memory broker',
  run: randomUUID().slice(0, 8),
  prefix: 'ce-',
  backend: () => new InMemoryBackend({ broker }),
  raw: async () => {
    const other = new InMemoryBackend({ broker });
    await other.connect();
    return {
      publish: (topic, { headers, contentType, body }) =>
        other.publish(
          {
            topic,
            headers,
            contentType,
            body: Buffer.from(body),
            messageId: randomUUID(),
            timestamp: Date.now(),
          },
          { mandatory: true },
        ),
      tap: async (topic) => {
        const messages: RawMessage[] = [];
        const service = `tap-${++taps}`;
        const subscription = await other.subscribe(
          { service, queue: `${service}.all`, topics: [topic], external: false, concurrency: 1 },
          (delivery) => {
            messages.push(delivery);
            return Promise.resolve({ action: 'ack' });
          },
        );
        return queuedTap(messages, () => subscription.cancel());
      },
      close: () => other.close(),
    };
  },
});
