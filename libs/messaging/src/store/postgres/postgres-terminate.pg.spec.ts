/**
 * A PostgreSQL connection ended by the server (`pg_terminate_backend`, as a failover or an idle-killer
 * would) while a transaction of the store holds it: the transaction fails, the process lives on, the
 * work is done again on a fresh connection of the Pool.
 *
 * | Transaction held      | What the test checks after the terminate                                  |
 * | --------------------- | ------------------------------------------------------------------------- |
 * | an idempotent handler | no uncaught exception; the message is redelivered and its effect is once  |
 * | the outbox relay      | no uncaught exception; the row is published again and leaves the outbox  |
 */
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { PoolClient } from 'pg';
import type {
  BackendPublishOptions,
  OutgoingMessage,
} from '../../backend/broker-backend.interface';
import { InMemoryBackend } from '../../backends/memory/in-memory.backend';
import { InMemoryBroker } from '../../backends/memory/in-memory.broker';
import { MessageContext } from '../../context/message-context';
import { Consume } from '../../decorators/consume.decorator';
import { MessageProducer } from '../../producer/message-producer';
import { MessagingPublisher } from '../../producer/messaging.publisher';
import { FAST_RETRY, useContractHarness } from '../../testing/contract-harness';
import {
  dropSchema,
  sqlOnTestDatabase,
  TEST_DATABASE_URL,
  uniqueSchema,
} from '../../testing/postgres.fixture';
import { gate, waitFor } from '../../testing/wait-for';
import { MessagingTransactions } from '../transactions';
import { PostgresMessageStore } from './postgres.store';

const schema = uniqueSchema('nm_term');
const broker = new InMemoryBroker();
const store = (maxConnections?: number) =>
  new PostgresMessageStore({
    connectionString: TEST_DATABASE_URL,
    schema,
    migrate: true,
    maxConnections,
  });

/**
 * Ends, from the server's side, the one connection that sits in a transaction whose last statement
 * mentions `marker`; resolves its pid.
 */
async function terminateTransactionOn(marker: string): Promise<number> {
  const holding = () =>
    sqlOnTestDatabase(
      `SELECT pid FROM pg_stat_activity
        WHERE state = 'idle in transaction' AND query LIKE $1 AND pid <> pg_backend_pid()`,
      [`%${marker}%`],
    );
  let rows: Record<string, unknown>[] = [];
  await waitFor(async () => (rows = await holding()).length === 1, {
    message: `one connection idle in a transaction on ${marker}`,
  });
  const pid = Number(rows[0]?.pid);
  await sqlOnTestDatabase('SELECT pg_terminate_backend($1::int)', [pid]);
  await waitFor(
    async () =>
      (await sqlOnTestDatabase('SELECT 1 FROM pg_stat_activity WHERE pid = $1::int', [pid]))
        .length === 0,
    { message: `backend ${pid} gone` },
  );
  return pid;
}

/** Errors that reached `process.on('uncaughtException')` while the test ran. */
function watchUncaught(): { readonly errors: unknown[]; stop(): void } {
  const errors: unknown[] = [];
  const listener = (error: unknown) => void errors.push(error);
  process.on('uncaughtException', listener);
  return { errors, stop: () => void process.off('uncaughtException', listener) };
}

beforeAll(() =>
  sqlOnTestDatabase(
    `CREATE SCHEMA IF NOT EXISTS "${schema}";
     CREATE TABLE "${schema}".effects (message_id text, attempt int)`,
  ),
);
afterAll(() => dropSchema(schema));

describe('PostgreSQL store: a connection terminated under a transaction', () => {
  const h = useContractHarness(() => new InMemoryBackend({ broker }), { servicePrefix: 'pg-term' });
  let uncaught: ReturnType<typeof watchUncaught>;
  beforeEach(() => (uncaught = watchUncaught()));
  afterEach(() => uncaught.stop());

  it("under an idempotent handler's transaction: redelivered, its effect happens once, no crash", async () => {
    const { service, topic } = h.unique();
    const holding = gate();
    const release = gate();
    const attempts: number[] = [];
    const pids: number[] = [];
    @Controller()
    class Handler {
      constructor(private readonly transactions: MessagingTransactions) {}
      @Consume(topic, { idempotent: true })
      async handle(@Payload() _body: unknown, @Ctx() ctx: MessageContext) {
        attempts.push(ctx.attempt);
        const client = this.transactions.current<PoolClient>() as PoolClient;
        const [{ pid }] = (await client.query('SELECT pg_backend_pid() AS pid')).rows;
        pids.push(Number(pid));
        await client.query(`INSERT INTO "${schema}".effects VALUES ($1, $2)`, [
          ctx.messageId,
          ctx.attempt,
        ]);
        if (ctx.attempt === 1) {
          holding.open();
          await release.promise;
        }
      }
    }
    // One connection: the retry can only run if the Pool replaced the terminated one.
    const app = await h.start(service, [Handler], { store: store(1), retry: FAST_RETRY });
    const p = new MessageProducer({ topic }, app.get(MessagingPublisher));
    const id = `${service}-m`;
    await p.publish({}, { messageId: id });
    await holding.promise;
    const terminated = await terminateTransactionOn(`"${schema}".effects`);
    release.open();

    await waitFor(() => attempts.includes(2), { message: 'the message delivered again' });
    const effects = () =>
      sqlOnTestDatabase(`SELECT attempt FROM "${schema}".effects WHERE message_id = $1`, [id]);
    await waitFor(async () => (await effects()).length > 0, { message: 'the retry committed' });
    expect(await effects()).toEqual([{ attempt: 2 }]);
    expect(pids[0]).toBe(terminated);
    expect(pids.at(-1)).not.toBe(terminated);
    expect(uncaught.errors).toEqual([]);
  });

  it("under the outbox relay's transaction: the row is published again, no crash", async () => {
    const { service, topic } = h.unique();
    const publishing = gate();
    const confirm = gate();
    let held = false;
    /** Holds the relay's first publish (and so its transaction) until the test released it. */
    class HeldBackend extends InMemoryBackend {
      override async publish(message: OutgoingMessage, options: BackendPublishOptions) {
        if (message.topic === topic && !held) {
          held = true;
          publishing.open();
          await confirm.promise;
        }
        return super.publish(message, options);
      }
    }
    const seen: string[] = [];
    @Controller()
    class Handler {
      @Consume(topic)
      handle(@Payload() _body: unknown, @Ctx() ctx: MessageContext) {
        seen.push(ctx.messageId);
      }
    }
    const relayStore = store();
    const app = await h.start(service, [Handler], {
      backend: new HeldBackend({ broker }),
      store: relayStore,
      outbox: { pollIntervalMs: 50, maxBackoffMs: 200 },
    });
    const transactions = app.get(MessagingTransactions);
    const p = new MessageProducer({ topic }, app.get(MessagingPublisher));
    const id = `${service}-out`;
    await transactions.run(() => p.publish({}, { messageId: id }));
    await publishing.promise;
    await terminateTransactionOn(`"${schema}".messaging_outbox`);
    confirm.open();

    await waitFor(async () => (await relayStore.backlog()).pending === 0 && seen.length >= 2, {
      message: 'the row published again and removed',
    });
    // Published before the failed commit and again after it: at least once, never lost.
    expect(seen).toEqual([id, id]);
    expect(uncaught.errors).toEqual([]);
  });
});
