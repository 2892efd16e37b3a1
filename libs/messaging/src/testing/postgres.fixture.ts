import { randomUUID } from 'node:crypto';

/** The PostgreSQL of the tests: `DATABASE_URL`, or the local one (trust authentication, database `test`). */
export const TEST_DATABASE_URL =
  process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

/** A schema name unique to this run, for tests that create tables. */
export function uniqueSchema(prefix = 'nm_test'): string {
  return `${prefix}_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
}

/** Runs one statement on the test database with a connection of its own. */
export async function sqlOnTestDatabase(
  text: string,
  params: unknown[] = [],
): Promise<Record<string, unknown>[]> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Client } = require('pg') as typeof import('pg');
  const client = new Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    return (await client.query(text, params)).rows;
  } finally {
    await client.end();
  }
}

/** Drops a schema the test created, with everything in it. */
export function dropSchema(schema: string): Promise<unknown> {
  return sqlOnTestDatabase(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

/** Statements on `schema`'s inbox waiting for a lock another transaction holds (duplicates waiting). */
export async function claimsWaiting(schema: string): Promise<number> {
  const [row] = await sqlOnTestDatabase(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE wait_event_type = 'Lock' AND query LIKE $1`,
    [`%"${schema}".messaging_inbox%`],
  );
  return Number(row?.n ?? 0);
}
