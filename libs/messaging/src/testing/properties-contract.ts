import { randomUUID } from 'node:crypto';
import type {
  BrokerBackend,
  Delivery,
  OutgoingMessage,
  Settlement,
  SubscriptionSpec,
} from '../backend/broker-backend.interface';
import { type BackendContractOptions, useConnectedBackends } from './contract-harness';
import { waitFor } from './wait-for';

/** A gzip body as a codec would write it: the backend carries its bytes, never decompresses. */
const GZIP_BODY = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03]);

const FAILURE = {
  reason: 'handler-error',
  message: 'failed on purpose',
  errorClass: 'Error',
  at: new Date(0),
} as const;

/**
 * Message properties a backend carries as its broker's own (`OutgoingMessage.contentEncoding`: AMQP
 * `content_encoding`, a `content-encoding` field on Redis, a `Content-Encoding` header on NATS), so
 * that a plain consumer can read them: on a publish, a delayed publish, the copies the backend makes
 * (retry, dead letter), a request and its reply. On backends directly, each instance standing for a
 * process. Called by `describeBackendContract`.
 */
export function runPropertiesContract(
  name: string,
  createBackend: () => BrokerBackend,
  options: BackendContractOptions = {},
): void {
  describe(`BrokerBackend contract: ${name}: message properties`, () => {
    const runId = randomUUID().slice(0, 8);
    const connectedBackends = useConnectedBackends(createBackend);
    const connected = async (): Promise<BrokerBackend> => (await connectedBackends(1))[0];
    let counter = 0;

    function route(): SubscriptionSpec & { topic: string } {
      counter++;
      const service = `${options.servicePrefix ?? 'contract'}-p${runId}-${counter}`;
      const topic = `cp${runId}.t${counter}`;
      return {
        service,
        queue: `${service}.encoded`,
        topics: [topic],
        topic,
        external: false,
        concurrency: 4,
      };
    }

    const message = (topic: string, overrides: Partial<OutgoingMessage> = {}): OutgoingMessage => ({
      topic,
      body: GZIP_BODY,
      headers: { tenant: 'acme' },
      messageId: randomUUID(),
      contentType: 'application/json',
      contentEncoding: 'gzip',
      timestamp: Date.now(),
      ...overrides,
    });

    it('carries contentEncoding on a publish, a delayed publish, a retry and a dead letter', async () => {
      const spec = route();
      const backend = await connected();
      const seen: Delivery[] = [];
      await backend.subscribe(spec, async (delivery): Promise<Settlement> => {
        seen.push(delivery);
        if (delivery.headers.kind !== 'failing') return { action: 'ack' };
        return delivery.attempt === 1
          ? { action: 'retry', delayMs: 50, failure: FAILURE }
          : { action: 'dead-letter', failure: FAILURE };
      });
      await backend.publish(message(spec.topic), { mandatory: true });
      await backend.publish(message(spec.topic, { delayMs: 100, headers: { kind: 'delayed' } }), {
        mandatory: true,
      });
      await backend.publish(message(spec.topic, { headers: { kind: 'failing' } }), {
        mandatory: true,
      });
      await waitFor(() => seen.length === 4, { message: 'publish, delayed, failing twice' });
      for (const delivery of seen) {
        expect(delivery).toMatchObject({
          contentType: 'application/json',
          contentEncoding: 'gzip',
        });
        expect(delivery.body.equals(GZIP_BODY)).toBe(true);
      }
      const retried = seen.find((d) => d.headers.kind === 'failing' && d.attempt === 2);
      expect(retried?.contentEncoding).toBe('gzip');
      let letters: Awaited<ReturnType<BrokerBackend['deadLetters']['list']>> = [];
      await waitFor(
        async () => (letters = await backend.deadLetters.list(spec.service)).length === 1,
        { message: 'one dead letter' },
      );
      expect(letters[0]).toMatchObject({
        contentEncoding: 'gzip',
        contentType: 'application/json',
      });
      expect(letters[0].body.equals(GZIP_BODY)).toBe(true);
    });

    it.each([false, true])(
      'carries contentEncoding on a request and on its reply (durable: %s)',
      async (durable) => {
        const spec = route();
        const server = await connected();
        const caller = await connected();
        const seen: Delivery[] = [];
        await server.subscribe(spec, async (delivery): Promise<Settlement> => {
          seen.push(delivery);
          return {
            action: 'ack',
            reply: {
              body: GZIP_BODY,
              headers: { answered: true },
              contentType: 'application/json',
              contentEncoding: 'gzip',
            },
          };
        });
        const request = message(spec.topic);
        const reply = await caller.request(
          { ...request, correlationId: request.messageId },
          { timeoutMs: 10_000, durable },
        );
        expect(seen).toHaveLength(1);
        expect(seen[0]).toMatchObject({ contentType: 'application/json', contentEncoding: 'gzip' });
        expect(reply).toMatchObject({ contentType: 'application/json', contentEncoding: 'gzip' });
        expect(reply.body.equals(GZIP_BODY)).toBe(true);
      },
    );
  });
}
