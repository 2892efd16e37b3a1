import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { PoolClient } from 'pg';
import { InMemoryBackend } from '../../backends/memory/in-memory.backend';
import { InMemoryBroker } from '../../backends/memory/in-memory.broker';
import { MessageContext } from '../../context/message-context';
import { Consume } from '../../decorators/consume.decorator';
import { MessageProducer } from '../../producer/message-producer';
import { MessagingPublisher } from '../../producer/messaging.publisher';
import { FAST_RETRY, useContractHarness } from '../../testing/contract-harness';
import { runExactlyOnceContract } from '../../testing/exactly-once-contract';
import {
  claimsWaiting,
  dropSchema,
  sqlOnTestDatabase,
  TEST_DATABASE_URL,
  uniqueSchema,
} from '../../testing/postgres.fixture';
import { gate, waitFor } from '../../testing/wait-for';
import { MessagingTransactions } from '../transactions';
import { PostgresMessageStore } from './postgres.store';

const schema = uniqueSchema();
const broker = new InMemoryBroker();
const store = () =>
  new PostgresMessageStore({ connectionString: TEST_DATABASE_URL, schema, migrate: true });

afterAll(() => dropSchema(schema));

runExactlyOnceContract(
  'memory backend, PostgreSQL store',
  () => new InMemoryBackend({ broker }),
  store,
  () => claimsWaiting(schema),
);

describe('PostgreSQL store: the handler writes in the inbox transaction', () => {
  const h = useContractHarness(() => new InMemoryBackend({ broker }), { servicePrefix: 'once-pg' });
  beforeAll(() =>
    sqlOnTestDatabase(
      `CREATE TABLE IF NOT EXISTS "${schema}".effects (message_id text, attempt int)`,
    ),
  );

  it('commits the handler own row with the inbox entry, and rolls it back with a failed attempt', async () => {
    const { service, topic } = h.unique();
    @Controller()
    class Handler {
      constructor(private readonly transactions: MessagingTransactions) {}
      @Consume(topic, { idempotent: true })
      async handle(@Payload() body: { failFirst: boolean }, @Ctx() ctx: MessageContext) {
        const client = this.transactions.current<PoolClient>() as PoolClient;
        await client.query(`INSERT INTO "${schema}".effects VALUES ($1, $2)`, [
          ctx.messageId,
          ctx.attempt,
        ]);
        if (body.failFirst && ctx.attempt === 1) throw new Error('crash after the write');
      }
    }
    const app = await h.start(service, [Handler], { store: store(), retry: FAST_RETRY });
    const p = new MessageProducer({ topic }, app.get(MessagingPublisher));
    const id = `${service}-m`;
    await p.publish({ failFirst: true }, { messageId: id });
    await p.publish({ failFirst: true }, { messageId: id });
    await p.publish({ failFirst: false }, { messageId: `${id}-after` });
    const effects = () =>
      sqlOnTestDatabase(`SELECT attempt FROM "${schema}".effects WHERE message_id = $1`, [id]);
    await waitFor(async () => (await effects()).length === 1);
    await waitFor(
      async () =>
        (
          await sqlOnTestDatabase(`SELECT 1 FROM "${schema}".effects WHERE message_id = $1`, [
            `${id}-after`,
          ])
        ).length === 1,
    );
    // The failed first attempt's row was rolled back; the duplicate never wrote one.
    expect(await effects()).toEqual([{ attempt: 2 }]);
  });

  it('joins a transaction the application opened: the outbox row commits or rolls back with it', async () => {
    const { service, topic } = h.unique();
    const seen: unknown[] = [];
    @Controller()
    class Handler {
      @Consume(topic)
      handle(@Payload() body: unknown) {
        seen.push(body);
      }
    }
    const app = await h.start(service, [Handler], {
      store: store(),
      outbox: { pollIntervalMs: 50 },
    });
    const transactions = app.get(MessagingTransactions);
    const p = new MessageProducer({ topic }, app.get(MessagingPublisher));
    const { Client } = await import('pg');
    const client = new Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    try {
      await client.query('BEGIN');
      await transactions.join(client, () => p.publish({ n: 'rolled back' }));
      await client.query('ROLLBACK');
      await client.query('BEGIN');
      await transactions.join(client, () => p.publish({ n: 'committed' }));
      await client.query('COMMIT');
    } finally {
      await client.end();
    }
    await waitFor(() => seen.length === 1, { message: 'the relay polled the committed row' });
    expect(seen).toEqual([{ n: 'committed' }]);
  });

  it('join() ends with its work: a publish left running is refused, current() is empty', async () => {
    const { service, topic } = h.unique();
    const app = await h.start(service, [], { store: store() });
    const transactions = app.get(MessagingTransactions);
    const p = new MessageProducer({ topic }, app.get(MessagingPublisher));
    const { Client } = await import('pg');
    const client = new Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    const after = gate();
    let late: Promise<string> | undefined;
    let currentLate: unknown = 'not read';
    try {
      await client.query('BEGIN');
      await transactions.join(client, async () => {
        late = after.promise.then(() => {
          currentLate = transactions.current();
          return p.publish({ late: true });
        });
      });
      await client.query('COMMIT');
      after.open();
      await expect(late).rejects.toThrow(/ended/);
      expect(currentLate).toBeUndefined();
      const [row] = await sqlOnTestDatabase(
        `SELECT count(*)::int AS n FROM "${schema}".messaging_outbox WHERE topic = $1`,
        [topic],
      );
      expect(row?.n).toBe(0);
    } finally {
      await client.end();
    }
  });
});
