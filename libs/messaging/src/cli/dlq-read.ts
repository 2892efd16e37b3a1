/**
 * `dlq list`, `dlq list --group-by error` and `dlq show`: reading a dead-letter queue a page or a
 * bounded batch at a time (`deadLetters.scan`), so that memory holds that much whatever the size of
 * the queue.
 */
import type { BrokerBackend, DeadLetter } from '../backend/broker-backend.interface';
import type { MessageCodec } from '../codec/message-codec';
import { EXIT, type CliIo } from './cli-io';
import { ErrorGrouping, isFiltered, matchesFilter, type DeadLetterFilter } from './dlq-filters';
import { groupTable, groupView, letterDetails, letterTable, toJson, toView } from './dlq-format';

/** One dlq command at work: where it prints, the connected backend, the service, the clock. */
export interface DlqRun {
  readonly io: CliIo;
  readonly backend: BrokerBackend;
  readonly service: string;
  /** Print one JSON document instead of tables. */
  readonly json: boolean;
  readonly codec: MessageCodec;
  /** When the command started: ages are counted from it. */
  readonly now: Date;
}

/** Writes lines to stdout. */
export function print(io: CliIo, lines: readonly string[]): void {
  for (const line of lines) io.out(line);
}

/** Which page of which dead letters `dlq list` prints. */
export interface ListRequest {
  readonly filter: DeadLetterFilter;
  /** Matching letters to skip. */
  readonly offset: number;
  readonly limit: number;
}

/** `dlq list`: one page of (matching) dead letters, and whether more follow. */
export async function listDeadLetters(run: DlqRun, request: ListRequest): Promise<number> {
  const { letters, more } = await selectPage(run, request);
  const { service, io } = run;
  const { offset } = request;
  if (run.json) {
    io.out(
      toJson({
        service,
        offset,
        limit: request.limit,
        count: letters.length,
        more,
        letters: letters.map((letter) => toView(run.codec, letter)),
      }),
    );
    return EXIT.ok;
  }
  const matching = isFiltered(request.filter) ? ' matching the filters' : '';
  if (letters.length === 0) {
    const from = offset > 0 ? ` from offset ${offset}` : '';
    io.out(`No dead letters of '${service}'${matching}${from}.`);
    return EXIT.ok;
  }
  print(io, letterTable(letters));
  const next = more ? `; more with --offset ${offset + letters.length}` : '';
  io.out('');
  io.out(
    `${offset + 1}-${offset + letters.length}: ${plural(letters.length, 'dead letter')} of '${service}'${matching}${next}.`,
  );
  return EXIT.ok;
}

/**
 * Without a filter the backend pages; with one, the whole queue is read once (`deadLetters.scan`:
 * a bounded batch at a time).
 */
async function selectPage(
  run: DlqRun,
  { filter, offset, limit }: ListRequest,
): Promise<{ letters: DeadLetter[]; more: boolean }> {
  if (!isFiltered(filter)) {
    // One more than asked, to know whether more follow.
    const page = await run.backend.deadLetters.list(run.service, { offset, limit: limit + 1 });
    return { letters: page.slice(0, limit), more: page.length > limit };
  }
  const letters: DeadLetter[] = [];
  let skipped = 0;
  let more = false;
  await run.backend.deadLetters.scan(run.service, (letter) => {
    if (!matchesFilter(letter, filter, run.now)) return;
    if (skipped < offset) {
      skipped++;
      return;
    }
    if (letters.length === limit) {
      more = true;
      return false;
    }
    letters.push(letter);
  });
  return { letters, more };
}

/** `dlq list --group-by error`: one line per kind of error, over the whole queue. */
export async function groupDeadLetters(run: DlqRun, filter: DeadLetterFilter): Promise<number> {
  const grouping = new ErrorGrouping();
  let read = 0;
  let matched = 0;
  await run.backend.deadLetters.scan(run.service, (letter) => {
    read++;
    if (!matchesFilter(letter, filter, run.now)) return;
    matched++;
    grouping.add(letter);
  });
  const groups = grouping.groups();
  const { io, service } = run;
  if (run.json) {
    io.out(toJson({ service, groupBy: 'error', read, matched, groups: groups.map(groupView) }));
    return EXIT.ok;
  }
  const matching = isFiltered(filter) ? ` matching the filters (of ${read} read)` : '';
  if (groups.length === 0) {
    io.out(`No dead letters of '${service}'${matching}.`);
    return EXIT.ok;
  }
  print(io, groupTable(groups));
  io.out('');
  io.out(
    `${plural(matched, 'dead letter')} of '${service}'${matching} in ${plural(groups.length, 'group')}; ` +
      '`dlq list --error <text>` lists the letters of one.',
  );
  return EXIT.ok;
}

/** `dlq show <id>`: one dead letter in full; exit code 1 when there is none with that id. */
export async function showDeadLetter(run: DlqRun, id: string): Promise<number> {
  let found: DeadLetter | undefined;
  await run.backend.deadLetters.scan(run.service, (letter) => {
    if (letter.id !== id) return;
    found = letter;
    return false;
  });
  if (!found) {
    run.io.err(
      `No dead letter '${id}' in the dead-letter queue of '${run.service}' (\`dlq list\` shows the ids).`,
    );
    return EXIT.failure;
  }
  const view = toView(run.codec, found);
  print(run.io, run.json ? [toJson(view)] : letterDetails(view));
  return EXIT.ok;
}

/** `3 dead letters`, `1 dead letter`. */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
