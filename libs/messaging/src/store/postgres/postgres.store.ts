import { MessagingConfigError } from '../../errors/messaging.errors';
import type {
  InboxKey,
  MessageStore,
  OutboxBacklog,
  OutboxBatch,
  OutboxMessage,
  OutboxRow,
  StoreTransaction,
} from '../message-store';
import { inPoolTransaction, openPool, type PgPoolLike } from './postgres-pool';
import { DEFAULT_SCHEMA, postgresMigrationSql, quoteSchema } from './postgres-schema';

export type { PgClientLike, PgPoolLike } from './postgres-pool';

/** Runs one statement and resolves its rows. */
type Sql = (text: string, params: readonly unknown[]) => Promise<Record<string, unknown>[]>;

/** Options of {@link PostgresMessageStore}: give one of `connectionString`, `pool` or `transaction`. */
export interface PostgresMessageStoreOptions {
  /** `postgres://user:password@host:5432/db`: the store opens a `pg` Pool of its own. */
  connectionString?: string;
  /**
   * A `pg` Pool of the application's, shared with its own queries (not ended by the store). With
   * `transaction` too, handlers' transactions are the ORM's and the relay's and upkeep's the Pool's.
   */
  pool?: PgPoolLike;
  /**
   * Opens a transaction of the application's ORM and runs `work` in it, so that the inbox entry and
   * outbox rows commit with the handler's own writes: `work` gets the ORM's handle (TypeORM
   * `EntityManager`, Prisma transaction client), which the handler reads as
   * `transactions.current()`.
   *
   * @example
   * transaction: (work) => dataSource.transaction((manager) => work(manager))  // TypeORM
   * transaction: (work) => prisma.$transaction((tx) => work(tx), { timeout: 30_000 })  // Prisma
   */
  transaction?: <T>(work: (native: unknown) => Promise<T>) => Promise<T>;
  /** Schema of the tables. @default 'messaging' */
  schema?: string;
  /** Create the tables at start when they are missing. @default false (run the migration yourself) */
  migrate?: boolean;
  /** Connections of the Pool opened from `connectionString`. @default 10 */
  maxConnections?: number;
  /**
   * How long a transaction waits for a free connection of the Pool opened from `connectionString`
   * before it fails (the handler is retried), rather than waiting forever. @default 10000
   */
  connectionTimeoutMs?: number;
}

const WHERE = 'PostgresMessageStore';

/**
 * Inbox and outbox in PostgreSQL, through `pg` (loaded only when this store opens its own Pool) or
 * through the application's ORM. Inbox entries, outbox rows and the handler's writes commit in one
 * transaction: a crash at any point leaves either all of them or none.
 *
 * @example
 * new PostgresMessageStore({ connectionString: process.env.DATABASE_URL, migrate: true })
 */
export class PostgresMessageStore implements MessageStore {
  readonly kind = 'postgres';
  readonly durable = true;
  private readonly schema: string;
  private readonly inbox: string;
  private readonly outbox: string;
  private readonly ownsPool: boolean;
  private pool?: PgPoolLike;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly options: PostgresMessageStoreOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new MessagingConfigError(
        `${WHERE} needs options, e.g. { connectionString: process.env.DATABASE_URL }`,
      );
    }
    const given = ['connectionString', 'pool', 'transaction'].filter(
      (key) => options[key as keyof PostgresMessageStoreOptions] !== undefined,
    );
    if (given.length !== 1 && !(given.length === 2 && options.pool && options.transaction)) {
      // pool + transaction: the ORM's transactions for handlers, the Pool for the relay and upkeep.
      throw new MessagingConfigError(
        `${WHERE}: give one of connectionString ('postgres://user@host/db'), pool (a pg Pool) or transaction (your ORM's); got ${given.join(', ') || 'none'}`,
      );
    }
    if (
      options.connectionString !== undefined &&
      !/^postgres(ql)?:\/\//.test(options.connectionString)
    ) {
      throw new MessagingConfigError(
        `${WHERE}: connectionString must start with postgres:// or postgresql://, got one starting '${String(options.connectionString).split(':')[0]}:'`,
      );
    }
    this.schema = options.schema ?? DEFAULT_SCHEMA;
    const s = quoteSchema(this.schema, `${WHERE}: schema`);
    this.inbox = `${s}.messaging_inbox`;
    this.outbox = `${s}.messaging_outbox`;
    this.ownsPool = options.connectionString !== undefined;
    this.pool = options.pool;
    if (this.ownsPool) {
      this.pool = openPool(
        options.connectionString as string,
        positive(options.maxConnections, 10, 'maxConnections'),
        positive(options.connectionTimeoutMs, 10_000, 'connectionTimeoutMs'),
        WHERE,
      );
    }
  }

  async migrate(): Promise<void> {
    await this.run(async (sql) => {
      // One migration at a time: CREATE ... IF NOT EXISTS races with itself in PostgreSQL.
      await sql('SELECT true AS locked FROM pg_advisory_xact_lock(hashtext($1::text))', [
        `nest-messaging:migrate:${this.schema}`,
      ]);
      for (const statement of splitStatements(postgresMigrationSql(this.schema)))
        await sql(statement, []);
    });
  }

  async init(): Promise<void> {
    if (this.options.migrate) return this.migrate();
    const [row] = await this.run((sql) =>
      sql(
        'SELECT to_regclass($1::text) IS NOT NULL AS inbox, to_regclass($2::text) IS NOT NULL AS outbox',
        [this.inbox, this.outbox],
      ),
    );
    if (row?.inbox !== true || row?.outbox !== true) {
      throw new MessagingConfigError(
        `${WHERE}: the tables ${this.inbox} and ${this.outbox} do not exist. Create them with ` +
          `'npx nest-messaging migrate --database-url <url> --schema ${this.schema}', or pass { migrate: true }`,
      );
    }
  }

  transaction<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    const inTransaction = async (sql: Sql, native: unknown): Promise<T> => {
      const tx = this.transactionOn(sql, native);
      try {
        const result = await work(tx);
        if (tx.enqueued) setImmediate(() => this.notify());
        return result;
      } finally {
        tx.close(); // committed or rolled back next: nothing more goes through it
      }
    };
    const { transaction } = this.options;
    if (transaction) return transaction((native) => inTransaction(sqlOf(native), native));
    return this.run(inTransaction);
  }

  join(native: unknown): StoreTransaction {
    return this.transactionOn(sqlOf(native), native);
  }

  relay<T>(limit: number, work: (batch: OutboxBatch) => Promise<T>): Promise<T | undefined> {
    return this.run(async (sql) => {
      const [lease] = await sql('SELECT pg_try_advisory_xact_lock(hashtext($1::text)) AS held', [
        `nest-messaging:relay:${this.schema}`,
      ]);
      if (lease?.held !== true) return undefined;
      const rows = await sql(
        `SELECT id, ordering_key, topic, queue, message_id, correlation_id, content_type, headers,
                body, delay_ms, mandatory, attempts, created_at
           FROM ${this.outbox} o
          WHERE o.available_at <= now()
            AND NOT EXISTS (SELECT 1 FROM ${this.outbox} p
                             WHERE p.ordering_key = o.ordering_key AND p.id < o.id AND p.available_at > now())
          ORDER BY o.id
          LIMIT $1::int`,
        [limit],
      );
      const sent: string[] = [];
      const failed: [string, string, number][] = [];
      const result = await work({
        rows: rows.map(toOutboxRow),
        sent: async (id) => void sent.push(id),
        failed: async (id, error, delayMs) => void failed.push([id, error, delayMs]),
      });
      if (sent.length > 0) {
        await sql(`DELETE FROM ${this.outbox} WHERE id = ANY($1::bigint[]) RETURNING id`, [sent]);
      }
      for (const [id, error, delayMs] of failed) {
        await sql(
          `UPDATE ${this.outbox} SET attempts = attempts + 1, last_error = $2::text,
                  available_at = clock_timestamp() + $3::double precision * interval '1 millisecond'
            WHERE id = $1::bigint RETURNING id`,
          [id, error.slice(0, 2000), delayMs],
        );
      }
      return result;
    });
  }

  async backlog(): Promise<OutboxBacklog> {
    const [row] = await this.run((sql) =>
      sql(`SELECT count(*)::int AS pending, min(created_at) AS oldest FROM ${this.outbox}`, []),
    );
    return {
      pending: Number(row?.pending ?? 0),
      oldestCreatedAt: row?.oldest ? new Date(row.oldest as string) : undefined,
    };
  }

  async purgeExpired(): Promise<number> {
    const rows = await this.run((sql) =>
      sql(`DELETE FROM ${this.inbox} WHERE expires_at <= now() RETURNING 1 AS purged`, []),
    );
    return rows.length;
  }

  onEnqueued(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    const pool = this.pool;
    if (this.ownsPool && pool) {
      this.pool = undefined;
      await pool.end();
    }
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }

  private transactionOn(sql: Sql, native: unknown): PostgresTransaction {
    return new PostgresTransaction(sql, native, this.inbox, this.outbox);
  }

  /**
   * Runs the store's own work (relay, backlog, purge, migration) in one transaction: the Pool's, or
   * the application's (`transaction` option) when there is no Pool.
   */
  private async run<T>(work: (sql: Sql, native: unknown) => Promise<T>): Promise<T> {
    if (this.options.transaction && !this.pool) {
      return this.options.transaction((native) => work(sqlOf(native), native));
    }
    const pool = this.pool;
    if (!pool) throw new MessagingConfigError(`${WHERE} is closed`);
    return inPoolTransaction(pool, (client) => work(sqlOf(client), client));
  }
}

class PostgresTransaction implements StoreTransaction {
  enqueued = false;
  private closed = false;

  constructor(
    private readonly sql: Sql,
    readonly native: unknown,
    private readonly inbox: string,
    private readonly outbox: string,
  ) {}

  async claim(key: InboxKey, ttlMs: number): Promise<boolean> {
    this.assertOpen();
    // A concurrent insert of the same key blocks here until its transaction ends: committed, the
    // conflict finds a live entry (no row: a duplicate); rolled back, this insert goes through.
    const rows = await this.sql(
      `INSERT INTO ${this.inbox} AS i (service, route, message_id, expires_at)
       VALUES ($1::text, $2::text, $3::text, now() + $4::double precision * interval '1 millisecond')
       ON CONFLICT (service, route, message_id) DO UPDATE
          SET expires_at = EXCLUDED.expires_at, handled_at = now()
        WHERE i.expires_at <= now()
       RETURNING 1 AS claimed`,
      [key.service, key.route, key.messageId, ttlMs],
    );
    return rows.length > 0;
  }

  async enqueue(message: OutboxMessage): Promise<void> {
    this.assertOpen();
    await this.sql(
      `INSERT INTO ${this.outbox} (ordering_key, topic, queue, message_id, correlation_id,
                                  content_type, headers, body, delay_ms, mandatory)
       VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text::jsonb,
               $8::bytea, $9::int, $10::boolean) RETURNING id`,
      [
        message.orderingKey,
        message.topic ?? null,
        message.queue ?? null,
        message.messageId,
        message.correlationId ?? null,
        message.contentType ?? null,
        JSON.stringify(message.headers),
        message.body,
        message.delayMs ?? null,
        message.mandatory,
      ],
    );
    this.enqueued = true;
  }

  close(): void {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) {
      throw new MessagingConfigError(
        'This transaction has ended: claim and enqueue inside the work of transaction() only',
      );
    }
  }
}

/** How to run SQL on a transaction handle: a `pg` client, a TypeORM EntityManager or QueryRunner, a Prisma client. */
function sqlOf(native: unknown): Sql {
  const handle = native as Record<string, unknown> | null;
  if (handle && typeof handle.$queryRawUnsafe === 'function') {
    const query = handle.$queryRawUnsafe as (
      text: string,
      ...params: unknown[]
    ) => Promise<unknown>;
    return async (text, params) => rowsOf(await query.call(handle, text, ...params));
  }
  if (handle && typeof handle.query === 'function') {
    const query = handle.query as (text: string, params: readonly unknown[]) => Promise<unknown>;
    return async (text, params) => rowsOf(await query.call(handle, text, params));
  }
  throw new MessagingConfigError(
    `${WHERE} cannot run SQL on this transaction: pass a pg client, a TypeORM EntityManager or a Prisma transaction client`,
  );
}

/**
 * Rows of a result: pg gives `{ rows }`, Prisma the rows, TypeORM the rows, or `[rows, count]` for an
 * UPDATE or DELETE (rows are objects, never arrays, so the two shapes cannot be mistaken).
 */
function rowsOf(result: unknown): Record<string, unknown>[] {
  if (Array.isArray(result)) {
    if (result.length === 2 && Array.isArray(result[0]) && typeof result[1] === 'number') {
      return result[0] as Record<string, unknown>[];
    }
    return result as Record<string, unknown>[];
  }
  const rows = (result as { rows?: unknown } | null)?.rows;
  return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
}

function toOutboxRow(row: Record<string, unknown>): OutboxRow {
  const optional = (value: unknown): string | undefined =>
    typeof value === 'string' ? value : undefined;
  return {
    id: String(row.id),
    orderingKey: String(row.ordering_key),
    topic: optional(row.topic),
    queue: optional(row.queue),
    messageId: String(row.message_id),
    correlationId: optional(row.correlation_id),
    contentType: optional(row.content_type),
    headers: (typeof row.headers === 'string'
      ? JSON.parse(row.headers)
      : row.headers) as OutboxRow['headers'],
    body: Buffer.isBuffer(row.body) ? row.body : Buffer.from(row.body as Uint8Array),
    delayMs: row.delay_ms === null ? undefined : Number(row.delay_ms),
    mandatory: row.mandatory === true,
    attempts: Number(row.attempts),
    createdAt: new Date(row.created_at as string),
  };
}

function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*\n/)
    .map((statement) => statement.replace(/^--.*$/gm, '').trim())
    .filter((statement) => statement.length > 0);
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) {
    throw new MessagingConfigError(
      `${WHERE}: ${name} must be a positive integer, got ${JSON.stringify(value)} (leave it out for ${fallback})`,
    );
  }
  return value;
}
