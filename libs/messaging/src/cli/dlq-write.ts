/**
 * `dlq replay` and `dlq purge`: the commands that change a dead-letter queue.
 */
import { Presets, SingleBar } from 'cli-progress';
import type { DeadLetter } from '../backend/broker-backend.interface';
import { redactCredentials } from '../backend/redact-credentials';
import { CliUsageError, EXIT, type CliIo } from './cli-io';
import { matchesFilter, type DeadLetterFilter } from './dlq-filters';
import { toJson } from './dlq-format';
import { plural, print, scanDeadLetters, type DlqRun } from './dlq-read';

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
 * attempts. Prints how many were replayed and which were not; exit code 1 when any was not.
 */
export async function replayDeadLetters(run: DlqRun, selection: ReplaySelection): Promise<number> {
  if (run.backend.replayDeadLettersWhere) return replayInOnePass(run, selection);
  if (selection.kind === 'all') return replayAll(run);
  const ids =
    selection.kind === 'ids'
      ? [...new Set(selection.ids)]
      : await matchingIds(run, selection.filter);
  if (ids.length === 0) {
    report(run, { requested: 0, replayed: 0, failed: [] });
    return EXIT.ok;
  }
  const failed: ReplayFailure[] = [];
  let replayed = 0;
  const bar = progressBar(run, ids.length);
  try {
    for (const [index, id] of ids.entries()) {
      try {
        if (await run.backend.replayDeadLetter(run.service, id)) replayed++;
        else failed.push({ id, error: 'not found' });
      } catch (error) {
        failed.push({ id, error: errorText(error) });
        if (run.backend.status !== 'connected') {
          // Every other replay would wait out the publish timeout too: stop, and say so.
          const rest = ids.slice(index + 1);
          failed.push(...rest.map((left) => ({ id: left, error: 'not attempted: no connection' })));
          break;
        }
      }
      bar?.increment();
    }
  } finally {
    bar?.stop();
  }
  report(run, { requested: ids.length, replayed, failed });
  return failed.length === 0 ? EXIT.ok : EXIT.failure;
}

/**
 * With a backend that replays by selection (`replayDeadLettersWhere`): one pass to count what the
 * selection picks (for the bar), one to replay it, whatever the size of the queue.
 */
async function replayInOnePass(run: DlqRun, selection: ReplaySelection): Promise<number> {
  const wanted = selection.kind === 'ids' ? new Set(selection.ids) : undefined;
  const picks = (letter: DeadLetter): boolean =>
    selection.kind === 'all' ||
    (wanted
      ? wanted.has(letter.id)
      : matchesFilter(letter, (selection as { filter: DeadLetterFilter }).filter, run.now));
  let total = 0;
  await scanDeadLetters(run.backend, run.service, (letter) => void (picks(letter) && total++));
  const bar = total > 0 ? progressBar(run, total) : undefined;
  let outcome;
  try {
    outcome = await (
      run.backend.replayDeadLettersWhere as NonNullable<DlqRun['backend']['replayDeadLettersWhere']>
    )(run.service, (letter) => {
      const picked = picks(letter);
      if (picked) bar?.increment();
      return picked;
    });
  } finally {
    bar?.stop();
  }
  const failed: ReplayFailure[] = [...outcome.failed];
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

/** The ids of the letters `filter` selects, read a page at a time (only the ids are kept). */
async function matchingIds(run: DlqRun, filter: DeadLetterFilter): Promise<string[]> {
  const ids: string[] = [];
  await scanDeadLetters(run.backend, run.service, (letter) => {
    if (matchesFilter(letter, filter, run.now)) ids.push(letter.id);
  });
  return ids;
}

/**
 * `--all`: one pass of the backend over the whole queue. It reports letters it could not replay
 * (their queue is gone) as errors and leaves them in the queue, so the ones still there that were
 * dead-lettered before this command started are the ones that failed.
 */
async function replayAll(run: DlqRun): Promise<number> {
  const errors: string[] = [];
  const stopListening = run.backend.on('error', (error) => errors.push(errorText(error)));
  let replayed: number;
  try {
    replayed = await run.backend.replayAllDeadLetters(run.service);
  } finally {
    stopListening();
  }
  const failed: ReplayFailure[] = [];
  if (errors.length > 0) {
    await scanDeadLetters(run.backend, run.service, (letter: DeadLetter) => {
      if (letter.deadLetteredAt <= run.now)
        failed.push({ id: letter.id, error: 'still in the dead-letter queue' });
    });
  }
  report(run, {
    requested: replayed + failed.length,
    replayed,
    failed,
    ...(errors.length > 0 ? { errors } : {}),
  });
  return errors.length === 0 ? EXIT.ok : EXIT.failure;
}

interface ReplayOutcome {
  readonly requested: number;
  readonly replayed: number;
  readonly failed: readonly ReplayFailure[];
  /** What the backend reported while replaying everything. */
  readonly errors?: readonly string[];
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
  for (const error of outcome.errors ?? []) io.err(`error: ${error}`);
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
 * `dlq purge`: deletes every dead letter of the service. Without `yes` it asks first (the caller
 * refuses when nobody can answer); a wrong answer purges nothing (exit code 1).
 */
export async function purgeDeadLetters(run: DlqRun, yes: boolean): Promise<number> {
  const { io, service } = run;
  assertPurgeConfirmable(io, service, yes);
  if (!yes && io.ask) {
    const count = await countDeadLetters(run, service);
    if (count === 0) {
      print(io, [run.json ? toJson({ service, purged: 0 }) : `No dead letters of '${service}'.`]);
      return EXIT.ok;
    }
    const answer = await io.ask(
      `This deletes ${plural(count, 'dead letter')} of '${service}' for good. ` +
        `Type the service name to confirm: `,
    );
    if (answer.trim() !== service) {
      io.err(`Not purged: the answer was not '${service}'.`);
      return EXIT.failure;
    }
    // What was confirmed is what is purged: letters that arrived meanwhile stop it.
    const now = await countDeadLetters(run, service);
    if (now !== count) {
      io.err(
        `Not purged: ${plural(now, 'dead letter')} now, not the ${count} you confirmed; run it again.`,
      );
      return EXIT.failure;
    }
  }
  const purged = await run.backend.purgeDeadLetters(service);
  io.out(
    run.json
      ? toJson({ service, purged })
      : `Purged ${plural(purged, 'dead letter')} of '${service}'.`,
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

/** An error's message, without credentials. */
export function errorText(error: unknown): string {
  return redactCredentials(error instanceof Error ? error.message : String(error));
}

async function countDeadLetters(run: DlqRun, service: string): Promise<number> {
  let count = 0;
  await scanDeadLetters(run.backend, service, () => {
    count++;
  });
  return count;
}
