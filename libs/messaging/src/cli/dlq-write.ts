/**
 * `dlq replay` and `dlq purge`: the commands that change a dead-letter queue.
 */
import { Presets, SingleBar } from 'cli-progress';
import type { DeadLetter } from '../backend/broker-backend.interface';
import { redactCredentials } from '../backend/redact-credentials';
import { CliUsageError, EXIT, type CliIo } from './cli-io';
import { isFiltered, matchesFilter, type DeadLetterFilter } from './dlq-filters';
import { toJson } from './dlq-format';
import { plural, print, type DlqRun } from './dlq-read';

/** Which dead letters `dlq replay` sends back. */
export type ReplaySelection =
  | { readonly kind: 'ids'; readonly ids: readonly string[] }
  | { readonly kind: 'all' }
  | { readonly kind: 'filter'; readonly filter: DeadLetterFilter };

/** A dead letter that was not replayed, and why. */
export interface ReplayFailure {
  readonly id: string;
  readonly error: string;
}

/**
 * `dlq replay`: sends the selected dead letters back to the queues they failed on, as first
 * attempts: one pass to count what the selection picks (for the bar), one to replay it
 * (`deadLetters.replayWhere`), whatever the size of the queue. Prints how many were replayed and
 * which were not; exit code 1 when any was not.
 */
export async function replayDeadLetters(run: DlqRun, selection: ReplaySelection): Promise<number> {
  const { deadLetters } = run.backend;
  const wanted = selection.kind === 'ids' ? new Set(selection.ids) : undefined;
  const picks = (letter: DeadLetter): boolean =>
    selection.kind === 'all' ||
    (wanted
      ? wanted.has(letter.id)
      : matchesFilter(letter, (selection as { filter: DeadLetterFilter }).filter, run.now));
  let total = 0;
  await deadLetters.scan(run.service, (letter) => void (picks(letter) && total++));
  const bar = total > 0 ? progressBar(run, total) : undefined;
  let outcome;
  try {
    outcome = await deadLetters.replayWhere(run.service, (letter) => {
      const picked = picks(letter);
      if (picked) bar?.increment();
      return picked;
    });
  } finally {
    bar?.stop();
  }
  const failed: ReplayFailure[] = outcome.failed.map(({ id, error }) => ({
    id,
    error: redactCredentials(error),
  }));
  if (wanted) {
    const seen = new Set([...outcome.replayed, ...outcome.failed.map((f) => f.id)]);
    for (const id of wanted) if (!seen.has(id)) failed.push({ id, error: 'not found' });
  }
  report(run, {
    requested: wanted ? wanted.size : outcome.replayed.length + outcome.failed.length,
    replayed: outcome.replayed.length,
    failed,
  });
  return failed.length === 0 ? EXIT.ok : EXIT.failure;
}

interface ReplayOutcome {
  readonly requested: number;
  readonly replayed: number;
  readonly failed: readonly ReplayFailure[];
}

function report(run: DlqRun, outcome: ReplayOutcome): void {
  const { io, service } = run;
  if (run.json) {
    io.out(toJson({ service, ...outcome }));
    return;
  }
  if (outcome.requested === 0 && outcome.failed.length === 0) {
    io.out(`No dead letters of '${service}' to replay.`);
    return;
  }
  io.out(
    `Replayed ${outcome.replayed} of ${plural(outcome.requested, 'dead letter')} of '${service}'.`,
  );
  if (outcome.failed.length > 0) {
    io.out(`Not replayed (${outcome.failed.length}):`);
    print(
      io,
      outcome.failed.map((f) => `  ${f.id}  ${f.error}`),
    );
  }
}

/** A bar on the terminal for a replay; none without a terminal or with `--json`. */
function progressBar(run: DlqRun, total: number): SingleBar | undefined {
  if (!run.io.progress || run.json) return undefined;
  const bar = new SingleBar(
    {
      stream: run.io.progress,
      format: 'Replaying [{bar}] {value}/{total} dead letters | {eta_formatted} left',
      clearOnComplete: true,
    },
    Presets.shades_classic,
  );
  bar.start(total, 0);
  return bar;
}

/**
 * `dlq purge`: deletes the dead letters of the service that `filter` selects (`deadLetters.purgeWhere`,
 * the others staying where they are), or every one without a filter (`deadLetters.purge`). Without
 * `yes` it asks first (the caller refuses when nobody can answer); a wrong answer purges nothing
 * (exit code 1).
 */
export async function purgeDeadLetters(
  run: DlqRun,
  yes: boolean,
  filter: DeadLetterFilter = {},
): Promise<number> {
  const { io, service } = run;
  const select = isFiltered(filter)
    ? (letter: DeadLetter) => matchesFilter(letter, filter, run.now)
    : undefined;
  const which = select ? ' selected by the filters' : '';
  assertPurgeConfirmable(io, service, yes);
  if (!yes && io.ask) {
    const count = await countDeadLetters(run, select);
    if (count === 0) {
      print(io, [
        run.json ? toJson({ service, purged: 0 }) : `No dead letters of '${service}'${which}.`,
      ]);
      return EXIT.ok;
    }
    const answer = await io.ask(
      `This deletes ${plural(count, 'dead letter')} of '${service}'${which} for good. ` +
        `Type the service name to confirm: `,
    );
    if (answer.trim() !== service) {
      io.err(`Not purged: the answer was not '${service}'.`);
      return EXIT.failure;
    }
    // What was confirmed is what is purged: letters that arrived meanwhile stop it.
    const now = await countDeadLetters(run, select);
    if (now !== count) {
      io.err(
        `Not purged: ${plural(now, 'dead letter')}${which} now, not the ${count} you confirmed; run it again.`,
      );
      return EXIT.failure;
    }
  }
  const { deadLetters } = run.backend;
  const purged = select
    ? (await deadLetters.purgeWhere(service, select)).purged.length
    : await deadLetters.purge(service);
  io.out(
    run.json
      ? toJson({ service, purged })
      : `Purged ${plural(purged, 'dead letter')} of '${service}'${which}.`,
  );
  return EXIT.ok;
}

/**
 * Throws the refusal of a purge nobody can confirm: no `--yes`, and standard input is not a
 * terminal. Checked before connecting, and again before purging.
 */
export function assertPurgeConfirmable(io: CliIo, service: string, yes: boolean): void {
  if (yes || io.ask) return;
  throw new CliUsageError(
    `Refusing to purge the dead letters of '${service}' without a confirmation, and standard input ` +
      'is not a terminal to ask on. Pass --yes to purge without being asked.',
  );
}

/** How many dead letters `select` picks (every one without it). */
async function countDeadLetters(
  run: DlqRun,
  select: (letter: DeadLetter) => boolean = () => true,
): Promise<number> {
  let count = 0;
  await run.backend.deadLetters.scan(run.service, (letter) => void (select(letter) && count++));
  return count;
}
