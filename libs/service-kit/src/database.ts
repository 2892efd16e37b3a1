import type { OnApplicationShutdown } from '@nestjs/common';
import { type MessagingTransactions, PostgresMessageStore } from '@app/messaging';
import type { Pool, PoolClient } from 'pg';

/** Where a sample service keeps its state when `DATABASE_URL` is set. */
export interface DatabaseOptions {
  /** `postgres://user@host:5432/db` */
  readonly url: string;
  /** Schema of the service's tables and of its inbox and outbox. */
  readonly schema: string;
}

/**
 * A sample service's PostgreSQL: one `pg` Pool shared by the service's own tables and the library's
 * inbox and outbox (so they commit in one transaction), ended when the app shuts down.
 */
export class Database implements OnApplicationShutdown {
  readonly pool: Pool;
  readonly schema: string;

  constructor(options: DatabaseOptions) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Pool } = require('pg') as typeof import('pg');
    // A handler holds a connection for its transaction and the simulated gateway takes another:
    // twice the consumers' concurrency (10). A wait for a free one fails after 10 s (and is retried)
    // rather than hanging.
    this.pool = new Pool({
      connectionString: options.url,
      max: 20,
      connectionTimeoutMillis: 10_000,
    });
    // An idle client's error (the server restarted) must not crash the service.
    this.pool.on('error', () => undefined);
    this.schema = options.schema;
  }

  /** The library's store on this database: its tables are created at start when missing. */
  messageStore(): PostgresMessageStore {
    return new PostgresMessageStore({ pool: this.pool, schema: this.schema, migrate: true });
  }

  /** `"schema".name` */
  table(name: string): string {
    return `"${this.schema}".${name}`;
  }

  /**
   * Runs one statement in the transaction in scope (an idempotent handler, `transactions.run()`),
   * or on its own outside one.
   */
  async query<R extends object = Record<string, unknown>>(
    transactions: MessagingTransactions,
    text: string,
    params: unknown[] = [],
  ): Promise<R[]> {
    const client = transactions.current<PoolClient>() ?? this.pool;
    return (await client.query(text, params)).rows as R[];
  }

  /** Creates the service's tables (idempotent DDL), one service instance at a time. */
  async migrate(ddl: string): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`migrate:${this.schema}`]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
      await client.query(ddl);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.pool.end();
  }
}
