import { randomUUID } from 'node:crypto';
import type { BrokerBackend, Settlement } from '../backend/broker-backend.interface';
import { waitFor } from '../testing/wait-for';
import { captureIo } from './cli.fixture';
import { main } from './main';

/** RedisStreamsBackend's warning at connect when Redis writes no append-only file. */
const PERSISTENCE_WARNING =
  /^warning: \[RedisStreamsBackend\] Redis at \S+ (persists nothing|only takes RDB snapshots|has AOF off)/;

/** A broker `nest-messaging dlq` is run against in {@link describeDlqOnBroker}. */
export interface DlqBroker {
  readonly name: string;
  /** `--url`: its scheme picks the backend. */
  readonly url: string;
  /** `--namespace`: the namespace (key prefix, subject prefix) unique to this run. */
  readonly namespace: string;
  /** A backend on `url` in `namespace`, for the service whose letters the command reads. */
  backend(): BrokerBackend;
  /** Deletes what `namespace` left on the broker. */
  cleanup(): Promise<void>;
}

/**
 * `nest-messaging dlq` on a broker other than RabbitMQ (dlq.amqp.spec.ts has the full tour there):
 * real dead letters listed as JSON, grouped, then replayed to the route they failed on, in process.
 */
export function describeDlqOnBroker(broker: DlqBroker): void {
  describe(`nest-messaging dlq (${broker.name})`, () => {
    const opened: BrokerBackend[] = [];
    afterAll(async () => {
      await Promise.all(opened.map((b) => b.close()));
      await broker.cleanup();
    }, 30_000);

    const dlq = async (service: string, args: string[]) => {
      const captured = captureIo();
      const argv = ['dlq', ...args, '--service', service, '--url', broker.url];
      const code = await main([...argv, '--namespace', broker.namespace], captured.io);
      return { code, ...captured };
    };

    it('lists, groups and replays the dead letters of a service', async () => {
      const service = `cli-${randomUUID().slice(0, 8)}`;
      const topic = `cli.${randomUUID().slice(0, 8)}.order`;
      const backend = broker.backend();
      opened.push(backend);
      await backend.connect();
      let failing = true;
      const handled: string[] = [];
      await backend.subscribe(
        { service, queue: `${service}.orders`, topics: [topic], external: false, concurrency: 4 },
        async (d): Promise<Settlement> => {
          if (!failing) {
            handled.push(d.messageId);
            return { action: 'ack' };
          }
          const failure = {
            reason: 'max-attempts' as const,
            message: 'gateway down',
            at: new Date(),
          };
          return { action: 'dead-letter', failure: { ...failure, errorClass: 'Error' } };
        },
      );
      const ids = [randomUUID(), randomUUID()];
      for (const messageId of ids) {
        await backend.publish(
          {
            topic,
            body: Buffer.from(JSON.stringify({ id: messageId })),
            headers: {},
            messageId,
            contentType: 'application/json',
            timestamp: Date.now(),
          },
          { mandatory: true },
        );
      }
      await waitFor(async () => (await backend.deadLetters.list(service)).length === 2, {
        message: '2 dead letters',
      });

      const listed = await dlq(service, ['list', '--json']);
      // The test Redis keeps nothing on disk, which RedisStreamsBackend says (once, on stderr): true,
      // and no error of the command's.
      const err = listed.err.filter((line) => !PERSISTENCE_WARNING.test(line));
      expect({ code: listed.code, err }).toEqual({ code: 0, err: [] });
      const json = JSON.parse(listed.stdout());
      expect(json).toMatchObject({ service, count: 2, more: false });
      expect(json.letters.map((l: { messageId: string }) => l.messageId)).toEqual(ids);
      expect(json.letters[0]).toMatchObject({ topic, queue: `${service}.orders`, attempts: 1 });

      const grouped = await dlq(service, ['list', '--group-by', 'error']);
      expect(grouped.code).toBe(0);
      expect(grouped.out.filter((line) => /gateway down/.test(line))).toHaveLength(1);

      failing = false;
      const replayed = await dlq(service, ['replay', '--all', '--json']);
      expect(replayed.code).toBe(0);
      await waitFor(() => handled.length === 2, { message: 'both replayed letters handled' });
      expect(handled.sort()).toEqual([...ids].sort());
      expect(await backend.deadLetters.list(service)).toEqual([]);
    });
  });
}
