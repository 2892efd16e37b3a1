import {
  claimsWaiting,
  dropSchema,
  TEST_DATABASE_URL,
  uniqueSchema,
} from '../../testing/postgres.fixture';
import { runStoreContract } from '../../testing/store-contract';
import { PostgresMessageStore } from './postgres.store';

runStoreContract('postgres', async () => {
  const schema = uniqueSchema();
  const store = new PostgresMessageStore({
    connectionString: TEST_DATABASE_URL,
    schema,
    migrate: true,
  });
  await store.init();
  const dispose = async (): Promise<void> => {
    await store.close();
    await dropSchema(schema);
  };
  return { store, waitingClaims: () => claimsWaiting(schema), dispose };
});

/**
 * The store through TypeORM's own transactions (`dataSource.transaction`): every statement of the
 * store, the relay's and the purge's included, runs through an `EntityManager`.
 */
runStoreContract('postgres through TypeORM transactions', async () => {
  const schema = uniqueSchema();
  const { DataSource } = await import('typeorm');
  const dataSource = new DataSource({ type: 'postgres', url: TEST_DATABASE_URL, poolSize: 10 });
  await dataSource.initialize();
  const store = new PostgresMessageStore({
    transaction: (work) => dataSource.transaction((manager) => work(manager)),
    schema,
    migrate: true,
  });
  await store.init();
  const dispose = async (): Promise<void> => {
    await store.close();
    await dataSource.destroy();
    await dropSchema(schema);
  };
  return { store, waitingClaims: () => claimsWaiting(schema), dispose };
});

/**
 * The store with a Prisma-shaped transaction client (`$queryRawUnsafe(text, ...params)` resolving
 * the rows) for handlers' transactions and a `pg` Pool for the relay and upkeep (both options).
 */
runStoreContract('postgres through a Prisma-shaped transaction, with a pool', async () => {
  const schema = uniqueSchema();
  const { Pool } = await import('pg');
  const pool = new Pool({ connectionString: TEST_DATABASE_URL, max: 10 });
  const transaction = async <T>(work: (tx: unknown) => Promise<T>): Promise<T> => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const tx = {
        $queryRawUnsafe: async (text: string, ...params: unknown[]) =>
          (await client.query(text, params)).rows,
      };
      const result = await work(tx);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK');
      throw error;
    } finally {
      client.release();
    }
  };
  const store = new PostgresMessageStore({ transaction, pool, schema, migrate: true });
  await store.init();
  const dispose = async (): Promise<void> => {
    await store.close();
    await pool.end();
    await dropSchema(schema);
  };
  return { store, waitingClaims: () => claimsWaiting(schema), dispose };
});

describe('PostgresMessageStore options', () => {
  it('refuses bad options with an error that says how to fix them', () => {
    const make = (options: unknown) => () =>
      new PostgresMessageStore(options as ConstructorParameters<typeof PostgresMessageStore>[0]);
    expect(make(undefined)).toThrow(/connectionString: process.env.DATABASE_URL/);
    expect(make({})).toThrow(/give one of connectionString .* got none/);
    expect(make({ connectionString: 'mysql://x', schema: 's' })).toThrow(
      /must start with postgres:\/\/.*got one starting 'mysql:'/,
    );
    expect(make({ connectionString: TEST_DATABASE_URL, schema: 'a-b' })).toThrow(
      /schema must be a plain identifier/,
    );
  });

  it('fails at start when its tables are missing, naming the command that creates them', async () => {
    const store = new PostgresMessageStore({
      connectionString: TEST_DATABASE_URL,
      schema: uniqueSchema(),
    });
    try {
      await expect(store.init()).rejects.toThrow(
        /npx nest-messaging migrate .*or pass \{ migrate: true \}/,
      );
    } finally {
      await store.close();
    }
  });
});
