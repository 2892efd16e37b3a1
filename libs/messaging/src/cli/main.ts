#!/usr/bin/env node
/**
 * `npx nest-messaging <command>`: the library's command line.
 *
 * | command                                   | does                                                   |
 * | ----------------------------------------- | ------------------------------------------------------ |
 * | `migrate --print [--schema S]`            | prints the SQL of the inbox and outbox tables          |
 * | `migrate --database-url URL [--schema S]` | creates them (idempotent); `DATABASE_URL` by default   |
 */
import { parseArgs } from 'node:util';
import { PostgresMessageStore } from '../store/postgres/postgres.store';
import { DEFAULT_SCHEMA, postgresMigrationSql } from '../store/postgres/postgres-schema';

const USAGE = `Usage:
  nest-messaging migrate --print [--schema messaging]
  nest-messaging migrate [--database-url postgres://user@host:5432/db] [--schema messaging]
      Creates the inbox and outbox tables (idempotent). The URL defaults to $DATABASE_URL.`;

export async function main(argv: string[], out: (line: string) => void): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== 'migrate') {
    out(
      command === undefined || command === '--help'
        ? USAGE
        : `Unknown command '${command}'.\n${USAGE}`,
    );
    return command === undefined || command === '--help' ? 0 : 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      print: { type: 'boolean', default: false },
      schema: { type: 'string', default: DEFAULT_SCHEMA },
      'database-url': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    out(USAGE);
    return 0;
  }
  if (values.print) {
    out(postgresMigrationSql(values.schema));
    return 0;
  }
  const url = values['database-url'] ?? process.env.DATABASE_URL;
  if (!url) {
    out(
      `No database: pass --database-url postgres://... or set DATABASE_URL (or --print for the SQL).`,
    );
    return 2;
  }
  const store = new PostgresMessageStore({ connectionString: url, schema: values.schema });
  try {
    await store.migrate();
    out(`Inbox and outbox tables are in schema '${values.schema}'.`);
    return 0;
  } finally {
    await store.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2), (line) => process.stdout.write(`${line}\n`)).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
