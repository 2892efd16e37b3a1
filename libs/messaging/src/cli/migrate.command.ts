/**
 * `nest-messaging migrate`: the tables of `PostgresMessageStore` (the inbox and the outbox). `pg` is
 * loaded only when the command connects, by the store.
 */
import type { Command } from 'commander';
import { PostgresMessageStore } from '../store/postgres/postgres.store';
import { DEFAULT_SCHEMA, postgresMigrationSql } from '../store/postgres/postgres-schema';
import { CliUsageError, EXIT, type CommandContext } from './cli-io';

interface MigrateOptions {
  readonly print?: boolean;
  readonly schema: string;
  readonly databaseUrl?: string;
}

/** Adds the `migrate` command to `program`. */
export function registerMigrateCommand(program: Command, context: CommandContext): void {
  program
    .command('migrate')
    .description('create the inbox and outbox tables of PostgresMessageStore (idempotent)')
    .option('--print', 'print the SQL instead of running it')
    .option('--schema <name>', 'schema of the tables', DEFAULT_SCHEMA)
    .option('--database-url <url>', 'PostgreSQL URL (default: $DATABASE_URL)')
    .action(async (options: MigrateOptions) => {
      context.exit(await migrate(options, context));
    });
}

async function migrate(options: MigrateOptions, { io, env }: CommandContext): Promise<number> {
  if (options.print) {
    io.out(postgresMigrationSql(options.schema));
    return EXIT.ok;
  }
  const url = options.databaseUrl ?? env.DATABASE_URL;
  if (!url) {
    throw new CliUsageError(
      'No database: pass --database-url postgres://... or set DATABASE_URL (or --print for the SQL).',
    );
  }
  const store = new PostgresMessageStore({ connectionString: url, schema: options.schema });
  try {
    await store.migrate();
    io.out(`Inbox and outbox tables are in schema '${options.schema}'.`);
    return EXIT.ok;
  } finally {
    await store.close();
  }
}
