#!/usr/bin/env node
/**
 * `npx nest-messaging <command>`: the library's command line.
 *
 * | command                                      | does                                                |
 * | -------------------------------------------- | --------------------------------------------------- |
 * | `migrate --print [--schema S]`               | prints the SQL of the inbox and outbox tables       |
 * | `migrate --database-url URL [--schema S]`    | creates them (idempotent); `DATABASE_URL` by default |
 * | `dlq list --service S [filters] [--group-by error]` | a page of dead letters, or one line per error |
 * | `dlq show --service S <id>`                  | one dead letter in full, its payload decoded        |
 * | `dlq replay --service S <id...> \| --all \| filters` | sends them back to their queues              |
 * | `dlq purge --service S [--yes]`              | deletes every dead letter, after a confirmation     |
 *
 * `--json` on every dlq command prints one JSON document. Exit codes: 0 done, 1 failed, 2 usage
 * error. `pg` is loaded only by `migrate`, `amqplib` only by `dlq`.
 */
import { Command, CommanderError } from 'commander';
import { redactCredentials } from '../backend/redact-credentials';
import { MessagingConfigError } from '../errors/messaging.errors';
import { CliUsageError, EXIT, processIo, type CliIo } from './cli-io';
import { registerDlqCommand, type DlqDependencies } from './dlq.command';
import { registerMigrateCommand } from './migrate.command';

/** What {@link main} runs with besides its arguments; the defaults are the process's. */
export interface CliDependencies extends DlqDependencies {
  /** @default process.env */
  readonly env?: NodeJS.ProcessEnv;
}

/** Commander's own outcomes that are not errors. */
const HELP_SHOWN = new Set(['commander.helpDisplayed', 'commander.version']);

/**
 * Runs the command line `argv` (without `node` and the script) and resolves with its exit code. It
 * never throws and never exits the process: errors are printed to `io.err` (one line, no stack).
 */
export async function main(
  argv: readonly string[],
  io: CliIo,
  dependencies: CliDependencies = {},
): Promise<number> {
  let code: number = EXIT.ok;
  const context = {
    io,
    env: dependencies.env ?? process.env,
    exit: (c: number) => (code = c),
  };
  const program = new Command('nest-messaging')
    .description('The command line of nest-messaging: database migration, dead letters.')
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.out(text.replace(/\n$/, '')),
      writeErr: (text) => io.err(text.replace(/\n$/, '')),
    })
    .showHelpAfterError('(add --help for usage)');
  registerMigrateCommand(program, context);
  registerDlqCommand(program, context, dependencies);
  if (argv.length === 0) {
    program.outputHelp();
    return EXIT.ok;
  }
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (error) {
    return failed(error, io);
  }
}

/** The version of the package: its package.json is two folders up, from `src/cli` as from `dist/cli`. */
function packageVersion(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../../package.json') as { version: string }).version;
}

/** The exit code of an error, which is printed unless commander printed it already. */
function failed(error: unknown, io: CliIo): number {
  if (error instanceof CommanderError) {
    // Commander printed it (or the help); a command group without its subcommand is a usage error.
    return HELP_SHOWN.has(error.code) ? EXIT.ok : EXIT.usage;
  }
  const message = redactCredentials(error instanceof Error ? error.message : String(error));
  io.err(`error: ${message}`);
  return error instanceof CliUsageError || error instanceof MessagingConfigError
    ? EXIT.usage
    : EXIT.failure;
}

/** Runs the command line of this process (`bin/nest-messaging.js`), setting its exit code. */
export function runCli(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    // `nest-messaging dlq list ... | head`: the reader is gone, which is not a failure.
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.ok);
    throw error;
  });
  void main(process.argv.slice(2), processIo()).then((code) => (process.exitCode = code));
}

if (require.main === module) runCli();
