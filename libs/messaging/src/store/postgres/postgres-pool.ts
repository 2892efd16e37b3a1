/**
 * The `pg` Pool of {@link PostgresMessageStore} and the transactions the store runs on it.
 *
 * A `pg` client emits `'error'` when its connection ends under it: the server terminated it
 * (`pg_terminate_backend`, a failover, an idle-session killer), or the network dropped it. The Pool
 * listens while a client is idle, nobody while it is checked out, and Node ends the process on an
 * `'error'` event that has no listener. {@link inPoolTransaction} listens for the whole checkout: the
 * error fails the transaction instead (its next statement, or its COMMIT, rejects; the work is done
 * again by whoever called it: a handler is retried, the relay picks its rows up again), and the client
 * goes back to the Pool as broken, so the Pool closes it and opens a fresh one for the next transaction.
 */
import { MessagingConfigError } from '../../errors/messaging.errors';

/** The part of a `pg` client the store uses. */
export interface PgClientLike {
  query(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  release(error?: Error | boolean): void;
  on?(event: 'error', listener: (error: Error) => void): unknown;
  removeListener?(event: 'error', listener: (error: Error) => void): unknown;
}

/** The part of a `pg` Pool the store uses. */
export interface PgPoolLike {
  connect(): Promise<PgClientLike>;
  end(): Promise<void>;
  on?(event: 'error', listener: (error: Error) => void): unknown;
}

/**
 * Runs `work` between BEGIN and COMMIT on a client of `pool` (ROLLBACK when it throws). A connection
 * lost meanwhile rejects the transaction rather than crashing the process, and the client is
 * released as broken so that the Pool replaces it.
 */
export async function inPoolTransaction<T>(
  pool: PgPoolLike,
  work: (client: PgClientLike) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const lost = (error: Error): void => {
    broken ??= error;
  };
  client.on?.('error', lost);
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    if (!broken) {
      await client.query('ROLLBACK').catch((rollback: unknown) => {
        broken = rollback instanceof Error ? rollback : new Error(String(rollback));
      });
    }
    throw error;
  } finally {
    client.release(broken);
    // A broken client keeps the listener: the Pool has ended it, and it may still report the end.
    if (!broken) client.removeListener?.('error', lost);
  }
}

/** A `pg` Pool; `pg` is loaded here, only when a store opens its own. */
export function openPool(
  connectionString: string,
  max: number,
  connectionTimeoutMillis: number,
  where: string,
): PgPoolLike {
  let pg: { Pool: new (config: object) => PgPoolLike };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    pg = require('pg') as typeof pg;
  } catch {
    throw new MessagingConfigError(
      `${where} needs the 'pg' package to open a connection: npm install pg (or pass { transaction } to use your ORM's)`,
    );
  }
  const pool = new pg.Pool({ connectionString, max, connectionTimeoutMillis });
  // An idle client's error (the server restarted) must not crash the process: the next query reconnects.
  pool.on?.('error', () => undefined);
  return pool;
}
