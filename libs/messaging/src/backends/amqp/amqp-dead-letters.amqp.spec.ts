/**
 * Dead letters listed page by page on RabbitMQ: oldest first, each letter once whatever the page size,
 * on quorum queues (which do not give messages back where they were) as on classic ones.
 */
import type { DeadLetter } from '../../backend/broker-backend.interface';
import { waitFor } from '../../testing/wait-for';
import { useAmqpFixture } from '../../testing/amqp-test.fixture';
import type { AmqpBackend } from './amqp.backend';

describe('AmqpBackend (RabbitMQ): paging dead letters', () => {
  const { make, message, spec, failure, queueDepth, svc, topicPrefix } = useAmqpFixture();

  /** A service whose handler dead-letters everything, one at a time (so in the order sent). */
  async function deadLettering(name: string, queueType: 'quorum' | 'classic' = 'quorum') {
    const backend = await make({ queueType });
    const service = svc(name);
    const topic = `${topicPrefix}.${name}`;
    await backend.subscribe(spec(service, 'q', [topic], { concurrency: 1 }), async () => ({
      action: 'dead-letter',
      failure: failure('x'),
    }));
    const sent: string[] = [];
    /** Dead-letters `count` more messages and waits until they are all in the dead-letter queue. */
    const deadLetter = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const m = message({ topic }, { i });
        await backend.publish(m, { mandatory: true });
        sent.push(m.messageId);
      }
      await waitFor(async () => (await queueDepth(`${service}.dead-letter`)) === sent.length, {
        message: `${sent.length} dead letters`,
      });
    };
    return { backend, service, sent, deadLetter };
  }

  /** The message ids of every page of `size`, from the first to the first short one. */
  async function pageThrough(
    backend: AmqpBackend,
    service: string,
    size: number,
    between: () => Promise<void> = async () => undefined,
  ): Promise<string[]> {
    const seen: string[] = [];
    for (let offset = 0; offset < 500; offset += size) {
      const page: DeadLetter[] = await backend.deadLetters.list(service, { offset, limit: size });
      seen.push(...page.map((letter) => letter.messageId));
      if (page.length < size) return seen;
      await between();
    }
    throw new Error('paging did not end');
  }

  it.each(['quorum', 'classic'] as const)(
    'pages 60 dead letters of a %s queue by 10 and by 7: every one once, oldest first',
    async (queueType) => {
      const { backend, service, sent, deadLetter } = await deadLettering(
        `page-${queueType}`,
        queueType,
      );
      await deadLetter(60);
      expect(await pageThrough(backend, service, 10)).toEqual(sent);
      expect(await pageThrough(backend, service, 7)).toEqual(sent);
      const scanned: string[] = [];
      await backend.deadLetters.scan(service, (letter) => void scanned.push(letter.messageId));
      expect(scanned).toEqual(sent);
      expect((await backend.deadLetters.list(service)).map((l) => l.messageId)).toEqual(sent);
    },
    60_000,
  );

  it('keeps the order of letters dead-lettered within the same millisecond', async () => {
    const backend = await make();
    const service = svc('burst');
    const topic = `${topicPrefix}.burst`;
    // Ten handlers at once dead-letter a burst: many letters share each millisecond.
    await backend.subscribe(spec(service, 'q', [topic], { concurrency: 10 }), async () => ({
      action: 'dead-letter',
      failure: failure('x'),
    }));
    const burst = Array.from({ length: 40 }, (_, i) => message({ topic }, { i }));
    await Promise.all(burst.map((m) => backend.publish(m, { mandatory: true })));
    await waitFor(async () => (await queueDepth(`${service}.dead-letter`)) === 40);
    const listed = await backend.deadLetters.list(service);
    const times = new Set(listed.map((l) => l.deadLetteredAt.getTime()));
    expect(times.size).toBeLessThan(40);
    expect(listed.map((l) => l.messageId)).toEqual(burst.map((m) => m.messageId));
  });

  it('shows letters dead-lettered while paging on later pages, each once', async () => {
    const { backend, service, sent, deadLetter } = await deadLettering('page-arrivals');
    await deadLetter(60);
    // Three more after every page of 7: they arrive while the pages are being read.
    const seen = await pageThrough(backend, service, 7, () => deadLetter(3));
    expect(sent.length).toBeGreaterThan(60);
    expect(seen).toEqual(sent);
  }, 60_000);
});
