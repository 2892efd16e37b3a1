/**
 * Tables of {@link PostgresMessageStore}, in one schema (default `messaging`):
 *
 * | Table              | Key                              | Role                                                      |
 * | ------------------ | -------------------------------- | --------------------------------------------------------- |
 * | `messaging_inbox`  | `(service, route, message_id)`   | messages an `idempotent` handler handled; a duplicate's   |
 * |                    |                                  | insert waits for the first transaction, then conflicts    |
 * | `messaging_outbox` | `id` (bigserial: write order)    | messages to publish; deleted once the broker confirmed    |
 *
 * Indexes: inbox entries by expiry (purge), outbox rows by `(ordering_key, id)` (order per key) and by
 * `(available_at, id)` (due rows). The relay lease is a transaction-scoped advisory lock keyed by the
 * schema's name, so relays of one schema take turns and never hold a row twice.
 *
 * The SQL is idempotent (`IF NOT EXISTS`): `npx nest-messaging migrate --print` shows it,
 * `npx nest-messaging migrate` runs it, `new PostgresMessageStore({ migrate: true })` runs it at start.
 */
import { MessagingConfigError } from '../../errors/messaging.errors';

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export const DEFAULT_SCHEMA = 'messaging';

/** `"schema"`, after checking it is a plain identifier (it is written into SQL). */
export function quoteSchema(schema: string, where: string): string {
  if (typeof schema !== 'string' || !SCHEMA_NAME.test(schema)) {
    throw new MessagingConfigError(
      `${where}: schema must be a plain identifier (letters, digits, '_'; up to 63), got ${JSON.stringify(schema)}`,
    );
  }
  return `"${schema}"`;
}

/** The migration: what `migrate` runs. */
export function postgresMigrationSql(schema = DEFAULT_SCHEMA): string {
  const s = quoteSchema(schema, 'postgresMigrationSql()');
  return `-- nest-messaging: inbox and outbox tables (idempotent)
CREATE SCHEMA IF NOT EXISTS ${s};

CREATE TABLE IF NOT EXISTS ${s}.messaging_inbox (
  service     text        NOT NULL,
  route       text        NOT NULL,
  message_id  text        NOT NULL,
  handled_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (service, route, message_id)
);
CREATE INDEX IF NOT EXISTS messaging_inbox_expires_at ON ${s}.messaging_inbox (expires_at);

CREATE TABLE IF NOT EXISTS ${s}.messaging_outbox (
  id              bigserial   PRIMARY KEY,
  ordering_key    text        NOT NULL,
  topic           text,
  queue           text,
  message_id      text        NOT NULL,
  correlation_id  text,
  content_type    text,
  headers         jsonb       NOT NULL DEFAULT '{}',
  body            bytea       NOT NULL,
  delay_ms        integer,
  mandatory       boolean     NOT NULL DEFAULT true,
  created_at      timestamptz NOT NULL DEFAULT now(),
  available_at    timestamptz NOT NULL DEFAULT now(),
  attempts        integer     NOT NULL DEFAULT 0,
  last_error      text,
  CHECK ((topic IS NULL) <> (queue IS NULL))
);
CREATE INDEX IF NOT EXISTS messaging_outbox_key ON ${s}.messaging_outbox (ordering_key, id);
CREATE INDEX IF NOT EXISTS messaging_outbox_due ON ${s}.messaging_outbox (available_at, id);
`;
}
