/**
 * A message another client sent with headers near 64 KiB leaves no room for the failure headers of
 * its retry copy or dead letter: it is parked at once, its handler run once (it used to be requeued,
 * and run again, until the broker's delivery limit parked it minutes later).
 */
import type { Settlement } from '../../backend/broker-backend.interface';
import { waitFor } from '../../testing/wait-for';
import { useAmqpFixture } from '../../testing/amqp-test.fixture';
import { DROPPED_HEADERS, MAX_HEADER_TABLE_BYTES } from './amqp-header-budget';

describe('AmqpBackend (RabbitMQ): headers near 64 KiB', () => {
  const { make, rawConnection, spec, failure, queueDepth, svc, topicPrefix, run, errors } =
    useAmqpFixture();

  const body = Buffer.from(JSON.stringify({ order: 42 }));
  // About 64.5 KB: amqplib can still send it, not with 1 KiB more.
  const headers = { big: 'b'.repeat(62_000), medium: 'm'.repeat(2_500), small: 'keep me' };

  /** Publishes `headers` to `topic` as a plain client would: straight to the exchange. */
  async function publishAsAnotherClient(topic: string, messageId: string): Promise<void> {
    const ch = await (await rawConnection()).createConfirmChannel();
    ch.publish(`test-amqp-${run}`, topic, body, {
      headers,
      messageId,
      contentType: 'application/json',
      persistent: true,
    });
    await ch.waitForConfirms();
    await ch.close();
  }

  it.each<[string, Settlement['action']]>([
    ['a retry', 'retry'],
    ['a dead letter', 'dead-letter'],
  ])(
    'parks it at once when %s would not fit, without its largest header, running the handler once',
    async (_what, action) => {
      const backend = await make();
      const service = svc(`large-${action}`);
      const topic = `${topicPrefix}.large.${action}`;
      const cause = { ...failure('e'.repeat(1_000)), errorClass: 'TypeError' };
      let calls = 0;
      await backend.subscribe(spec(service, 'q', [topic]), async () => {
        calls++;
        return action === 'retry'
          ? { action: 'retry', delayMs: 0, failure: cause }
          : { action: 'dead-letter', failure: { ...cause, reason: 'unrecoverable' } };
      });
      await publishAsAnotherClient(topic, `large-${action}-${run}`);

      await waitFor(async () => (await queueDepth(`${service}.dead-letter`)) === 1, {
        message: 'the message in the dead-letter queue',
      });
      const [letter] = await backend.deadLetters.list(service);
      expect(letter).toMatchObject({
        messageId: `large-${action}-${run}`,
        topic,
        queue: `${service}.q`,
        error: cause.message,
        errorClass: 'TypeError',
        attempts: 1,
        reason: action === 'retry' ? 'handler-error' : 'unrecoverable',
      });
      expect(letter.body.equals(body)).toBe(true);
      expect(letter.headers).toMatchObject({ medium: headers.medium, small: 'keep me' });
      expect(letter.headers).not.toHaveProperty('big');
      expect(letter.headers[DROPPED_HEADERS]).toMatch(
        new RegExp(`dropped to fit ${MAX_HEADER_TABLE_BYTES} bytes: big \\(62009 bytes\\)$`),
      );
      if (action === 'retry') {
        expect(letter.headers[DROPPED_HEADERS]).toMatch(/^not retried, a retry copy would not fit/);
        expect(errors.map((e) => e.message)).toContainEqual(
          expect.stringMatching(/is dead-lettered instead of retried: .* Send smaller headers/),
        );
      }
      // Acked, not held for a requeue: closing gives nothing back, and the handler ran once.
      await backend.close();
      expect(await queueDepth(`${service}.q`)).toBe(0);
      expect(calls).toBe(1);
    },
  );
});
