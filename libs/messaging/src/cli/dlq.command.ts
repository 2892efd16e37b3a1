/**
 * `nest-messaging dlq list|show|replay|purge`: the commands over a service's dead-letter queue, as
 * commander sees them. Options are parsed here; the work is in `dlq-read.ts` and `dlq-write.ts`.
 */
import { Option, type Command } from 'commander';
import { DEFAULT_CODEC } from '../codec/codec-options';
import { MessageCodec } from '../codec/message-codec';
import { CliUsageError, type CommandContext } from './cli-io';
import { DEFAULT_BROKER_URL, withBackend, type BackendFactories } from './dlq-backend';
import { FAILURE_REASONS } from '../backend/message-headers';
import {
  isFiltered,
  parseCount,
  parseDuration,
  parseFilter,
  type FilterOptions,
} from './dlq-filters';
import { groupDeadLetters, listDeadLetters, showDeadLetter, type DlqRun } from './dlq-read';
import { assertPurgeConfirmable, purgeDeadLetters, replayDeadLetters } from './dlq-write';

/** What the dlq commands need besides the context; tests give other backends and clocks. */
export interface DlqDependencies {
  /** Backends by URL scheme. @default the library's `backendFromUrl` (amqp, redis, nats, ...) */
  readonly backends?: BackendFactories;
  /** @default () => new Date() */
  readonly now?: () => Date;
}

/** Letters per page of `dlq list` when `--limit` is not given. */
export const DEFAULT_LIST_LIMIT = 50;

interface ConnectionOptions {
  readonly service: string;
  readonly url?: string;
  readonly namespace?: string;
  /** The older name of `--namespace`. */
  readonly exchange?: string;
  readonly connectTimeout: string;
  readonly json?: boolean;
}

type ListOptions = ConnectionOptions &
  FilterOptions & { readonly limit?: string; readonly offset?: string; readonly groupBy?: string };
type ReplayOptions = ConnectionOptions & FilterOptions & { readonly all?: boolean };
type PurgeOptions = ConnectionOptions & FilterOptions & { readonly yes?: boolean };

const EXAMPLES = `
Examples:
  nest-messaging dlq list --service payments
  nest-messaging dlq list --service payments --group-by error
  nest-messaging dlq list --service payments --topic 'order.*' --newer-than 1h --json
  nest-messaging dlq show --service payments 2f0c9a4e-...
  nest-messaging dlq replay --service payments --error /timeout/i --older-than 10m
  nest-messaging dlq purge --service payments --error 'out of stock' --yes
  nest-messaging dlq purge --service payments --yes

Exit codes: 0 done, 1 failed (broker unreachable, not found, not replayed), 2 usage error.`;

/** Adds the `dlq` command group to `program`. */
export function registerDlqCommand(
  program: Command,
  context: CommandContext,
  dependencies: DlqDependencies = {},
): void {
  const run = (options: ConnectionOptions, work: (run: DlqRun) => Promise<number>) =>
    runDlq(context, dependencies, options, work);
  const dlq = program
    .command('dlq')
    .description("list, show, replay and purge a service's dead letters")
    .addHelpText('after', EXAMPLES);

  withFilters(withConnection(dlq.command('list')))
    .description('list dead letters, oldest first, a page at a time')
    .option('--limit <n>', `letters per page (default: ${DEFAULT_LIST_LIMIT})`)
    .option('--offset <n>', 'skip this many (matching) letters first (default: 0)')
    .addOption(
      new Option(
        '--group-by <key>',
        'one line per kind of error over the whole queue: count, topics, first and last seen',
      ).choices(['error']),
    )
    .action(async (options: ListOptions) => {
      const filter = parseFilter(options);
      if (options.groupBy !== undefined) {
        if (options.limit !== undefined || options.offset !== undefined) {
          throw new CliUsageError(
            '--group-by reads the whole queue: drop --limit and --offset (they page single letters).',
          );
        }
        await run(options, (r) => groupDeadLetters(r, filter));
        return;
      }
      const limit = parseCount(options.limit ?? String(DEFAULT_LIST_LIMIT), '--limit', 1);
      const offset = parseCount(options.offset ?? '0', '--offset', 0);
      await run(options, (r) => listDeadLetters(r, { filter, limit, offset }));
    });

  withConnection(dlq.command('show'))
    .description('show one dead letter in full: metadata, headers, decoded payload')
    .argument('<id>', 'the id of the dead letter (`dlq list` shows them)')
    .action(async (id: string, options: ConnectionOptions) => {
      await run(options, (r) => showDeadLetter(r, id));
    });

  withFilters(withConnection(dlq.command('replay')))
    .description(
      'send dead letters back to the queues they failed on, as first attempts: by id, --all, or those the filters select',
    )
    .argument('[ids...]', 'ids of dead letters (`dlq list` shows them)')
    .option('--all', 'replay every dead letter of the service')
    .action(async (ids: string[], options: ReplayOptions) => {
      const filter = parseFilter(options);
      const chosen = [ids.length > 0, options.all === true, isFiltered(filter)].filter(Boolean);
      if (chosen.length !== 1) {
        throw new CliUsageError(
          chosen.length === 0
            ? 'Say what to replay: ids, --all, or filters (--topic, --reason, --error, --older-than, --newer-than).'
            : 'Say what to replay one way only: ids, --all, or filters.',
        );
      }
      const selection =
        ids.length > 0
          ? ({ kind: 'ids', ids } as const)
          : options.all
            ? ({ kind: 'all' } as const)
            : ({ kind: 'filter', filter } as const);
      await run(options, (r) => replayDeadLetters(r, selection));
    });

  withFilters(withConnection(dlq.command('purge')))
    .description(
      'delete the dead letters the filters select, or every one without a filter, after a confirmation',
    )
    .option('-y, --yes', 'do not ask for a confirmation (needed without a terminal)')
    .action(async (options: PurgeOptions) => {
      const filter = parseFilter(options);
      assertPurgeConfirmable(context.io, options.service, options.yes === true);
      await run(options, (r) => purgeDeadLetters(r, options.yes === true, filter));
    });
}

/** The options every dlq command takes: which broker, which service, which output. */
function withConnection(command: Command): Command {
  return command
    .requiredOption(
      '-s, --service <name>',
      "the service whose dead letters these are (its 'service')",
    )
    .option(
      '--url <url>',
      'broker URL: amqp(s)://, redis(s)://, nats:// or tls:// (default: $BROKER_URL, else amqp://guest@127.0.0.1:5672)',
    )
    .option(
      '--namespace <name>',
      'the services\' namespace, as in their backend\'s options: topic exchange (RabbitMQ), key prefix (Redis), subject prefix (NATS) (default: "messaging")',
    )
    .addOption(new Option('--exchange <name>', 'the older name of --namespace').hideHelp())
    .option('--connect-timeout <duration>', 'give up reaching the broker after this long', '10s')
    .option('--json', 'print one JSON document instead of tables');
}

/** The filter options of list, replay and purge. */
function withFilters(command: Command): Command {
  const options = [
    new Option('--topic <pattern>', 'only this topic or AMQP pattern (order.*, order.#)'),
    new Option(
      '--reason <reasons>',
      `only these failure reasons, comma-separated: ${FAILURE_REASONS.join(', ')}`,
    ),
    new Option(
      '--error <text|/regex/>',
      'only errors whose message or class contains this text (case-sensitive) or matches /regex/flags',
    ),
    new Option(
      '--older-than <duration>',
      'only dead-lettered longer ago than this: 90s, 30m, 1h, 2d',
    ),
    new Option('--newer-than <duration>', 'only dead-lettered less long ago than this'),
  ];
  for (const option of options) command.addOption(option);
  return command;
}

/** Connects, runs one dlq command, closes, and records its exit code. */
async function runDlq(
  context: CommandContext,
  dependencies: DlqDependencies,
  options: ConnectionOptions,
  work: (run: DlqRun) => Promise<number>,
): Promise<void> {
  const { io, env } = context;
  if (options.service.trim() === '') throw new CliUsageError('--service: the name is empty.');
  const target = {
    url: options.url || env.BROKER_URL || DEFAULT_BROKER_URL,
    namespace: namespaceOf(options, io.err),
    connectTimeoutMs: parseDuration(options.connectTimeout, '--connect-timeout'),
    warn: (line: string) => io.err(line),
  };
  const now = dependencies.now ?? (() => new Date());
  const code = await withBackend(target, dependencies.backends, (backend) =>
    work({
      io,
      backend,
      service: options.service,
      json: options.json === true,
      codec: new MessageCodec(DEFAULT_CODEC),
      now: now(),
    }),
  );
  context.exit(code);
}

/** `--namespace`, or `--exchange` (its older name: still taken, with a line that says so). */
function namespaceOf(options: ConnectionOptions, warn: (line: string) => void): string {
  const { namespace, exchange } = options;
  if (exchange === undefined) return namespace ?? 'messaging';
  if (namespace !== undefined && namespace !== exchange) {
    throw new CliUsageError(
      `--namespace '${namespace}' and --exchange '${exchange}' name two namespaces: give --namespace only (--exchange is its older name).`,
    );
  }
  warn('warning: --exchange is deprecated: use --namespace (same value, same meaning).');
  return exchange;
}
