import { randomUUID } from 'node:crypto';
import type { BrokerBackend, Delivery } from '../backend/broker-backend.interface';
import { waitFor } from './wait-for';

/** Another application's producer: the broker's own client, which gives its messages no id. */
export interface ForeignProducer {
  /** Publishes `body` to `topic` as a plain client does: no message id, none of our fields. */
  publish(topic: string, body: string): Promise<void>;
  close(): Promise<void>;
}

/** What the foreign-id contract needs to know of a backend beyond its factory. */
export interface ForeignIdContractOptions {
  /** Connects a producer of the broker's own client to the broker of `createBackend`. */
  foreignProducer(): Promise<ForeignProducer>;
  /** Prefix of every service name the suite uses, so a spec can clean up after it. */
  servicePrefix: string;
  /**
   * Whether two identical foreign messages get one id: true on a broker that identifies a message
   * by its content (RabbitMQ has no id of its own), false on one that numbers what it stores (a
   * Redis stream's entry id, a JetStream stream sequence).
   */
  identicalMessagesShareId: boolean;
}

/**
 * The message ids of foreign messages, those a plain client sent without an id: each is the same on
 * every delivery of one message, so that the inbox (`idempotent: true`) handles a redelivery once,
 * and different for different messages. Checked on the backend itself, with a foreign producer of
 * the broker's own client. Not part of `runBackendContract`, which publishes only through backends.
 *
 * @example
 * runForeignIdContract('redis', () => new RedisStreamsBackend({ url }), { foreignProducer, ... });
 */
export function runForeignIdContract(
  name: string,
  createBackend: () => BrokerBackend,
  options: ForeignIdContractOptions,
): void {
  describe(`BrokerBackend contract, foreign message ids: ${name}`, () => {
    const runId = randomUUID().slice(0, 8);
    let counter = 0;
    let backend: BrokerBackend;
    let producer: ForeignProducer;

    beforeEach(async () => {
      backend = createBackend();
      await backend.connect();
      producer = await options.foreignProducer();
    });

    afterEach(async () => {
      await producer.close();
      await backend.close();
    });

    /** Subscribes a new queue to a new topic; `settle` says what to do with delivery `n` (0-based). */
    const consume = async (settle: (n: number) => 'ack' | 'requeue') => {
      counter++;
      const service = `${options.servicePrefix}-fid-${runId}-${counter}`;
      const topic = `fid${runId}.t${counter}`;
      const seen: Delivery[] = [];
      await backend.subscribe(
        { service, queue: `${service}.foreign`, topics: [topic], external: false, concurrency: 1 },
        (delivery) => {
          seen.push(delivery);
          return Promise.resolve({ action: settle(seen.length - 1) });
        },
      );
      return { topic, seen };
    };

    it('gives a foreign message without an id the same messageId on its redelivery', async () => {
      const { topic, seen } = await consume((n) => (n === 0 ? 'requeue' : 'ack'));
      await producer.publish(topic, '{"orderId":"o-1"}');
      await waitFor(() => seen.length === 2, { message: 'the foreign message delivered twice' });
      const [first, again] = seen;
      expect(first.messageId).toEqual(expect.any(String));
      expect(first.messageId).not.toBe('');
      expect(again.redelivered).toBe(true);
      expect(again.messageId).toBe(first.messageId);
    });

    it('gives different foreign messages different ids, and identical ones as the broker identifies them', async () => {
      const { topic, seen } = await consume(() => 'ack');
      for (const body of ['one', 'two', 'same', 'same']) await producer.publish(topic, body);
      await waitFor(() => seen.length === 4, { message: 'the four foreign messages delivered' });
      const ids = (body: string) =>
        seen.filter((d) => d.body.toString() === body).map((d) => d.messageId);
      const [[one], [two], [same, sameAgain]] = [ids('one'), ids('two'), ids('same')];
      expect(new Set([one, two, same]).size).toBe(3);
      if (options.identicalMessagesShareId) expect(sameAgain).toBe(same);
      else expect(sameAgain).not.toBe(same);
    });
  });
}
