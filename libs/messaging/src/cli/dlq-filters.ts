/**
 * What `nest-messaging dlq` selects and how it groups: parsing of the filter options and durations,
 * matching a dead letter, grouping by error. Pure: no I/O, the clock is an argument.
 */
import type { DeadLetter, FailureReason } from '../backend/broker-backend.interface';
import { FAILURE_REASONS } from '../backend/message-headers';
import { assertValidTopicPattern, topicMatches } from '../backend/topic-matcher';
import { MessagingConfigError } from '../errors/messaging.errors';
import { CliUsageError } from './cli-io';

/** The filter options as typed on the command line. */
export interface FilterOptions {
  readonly topic?: string;
  readonly reason?: string;
  readonly error?: string;
  readonly olderThan?: string;
  readonly newerThan?: string;
}

/** Which dead letters a command works on; every field set must match. */
export interface DeadLetterFilter {
  /** A topic or an AMQP pattern (`order.*`, `order.#`). */
  readonly topic?: string;
  /** Any of these reasons. */
  readonly reasons?: readonly FailureReason[];
  /** Matches the error message or the error's class name. */
  readonly error?: string | RegExp;
  /** Dead-lettered longer ago than this. */
  readonly olderThanMs?: number;
  /** Dead-lettered less long ago than this. */
  readonly newerThanMs?: number;
}

/** What matching reads of a dead letter. */
export type FilteredLetter = Pick<
  DeadLetter,
  'topic' | 'reason' | 'error' | 'errorClass' | 'deadLetteredAt'
>;

const UNIT_MS: Readonly<Record<string, number>> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Milliseconds of a duration written `90s`, `30m`, `1h`, `2d`, `1.5h` or `1h30m`; throws a
 * {@link CliUsageError} naming `option` otherwise.
 */
export function parseDuration(text: string, option: string): number {
  const parts = /^(?:\d+(?:\.\d+)?[smhd])+$/.test(text.trim())
    ? [...text.trim().matchAll(/(\d+(?:\.\d+)?)([smhd])/g)]
    : [];
  const ms = parts.reduce((sum, [, amount, unit]) => sum + Number(amount) * UNIT_MS[unit], 0);
  if (parts.length === 0 || ms <= 0) {
    throw new CliUsageError(
      `${option}: '${text}' is not a duration. Write a number and a unit, s, m, h or d: 90s, 30m, 1h, 2d (or 1h30m).`,
    );
  }
  return Math.round(ms);
}

/** A whole number of at least `min`, as `--limit` and `--offset` take; else a {@link CliUsageError}. */
export function parseCount(text: string, option: string, min: number): number {
  const value = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new CliUsageError(`${option}: '${text}' is not a whole number of at least ${min}.`);
  }
  return value;
}

/**
 * `--error`: `/regex/flags` is a regular expression (`g` and `y` are dropped: they would make a
 * match depend on the one before), anything else a case-sensitive substring.
 */
export function parseErrorMatcher(text: string): string | RegExp {
  const literal = /^\/(.+)\/([a-z]*)$/s.exec(text);
  if (!literal) return text;
  try {
    return new RegExp(literal[1], literal[2].replace(/[gy]/g, ''));
  } catch (error) {
    throw new CliUsageError(
      `--error: ${text} is not a valid regular expression (${(error as Error).message}). ` +
        'Write /pattern/flags, or plain text to match a substring.',
    );
  }
}

/** Parses the filter options; throws a {@link CliUsageError} that says what to write instead. */
export function parseFilter(options: FilterOptions): DeadLetterFilter {
  const filter: {
    -readonly [K in keyof DeadLetterFilter]: DeadLetterFilter[K];
  } = {};
  if (options.topic !== undefined) {
    try {
      assertValidTopicPattern(options.topic, '--topic');
    } catch (error) {
      if (error instanceof MessagingConfigError) throw new CliUsageError(error.message);
      throw error;
    }
    filter.topic = options.topic;
  }
  if (options.reason !== undefined) filter.reasons = parseReasons(options.reason);
  if (options.error !== undefined) filter.error = parseErrorMatcher(options.error);
  if (options.olderThan !== undefined)
    filter.olderThanMs = parseDuration(options.olderThan, '--older-than');
  if (options.newerThan !== undefined)
    filter.newerThanMs = parseDuration(options.newerThan, '--newer-than');
  if (
    filter.olderThanMs !== undefined &&
    filter.newerThanMs !== undefined &&
    filter.newerThanMs <= filter.olderThanMs
  ) {
    throw new CliUsageError(
      `--older-than ${options.olderThan} and --newer-than ${options.newerThan} select nothing: ` +
        'for a window, --newer-than must be the longer one (--newer-than 2h --older-than 1h).',
    );
  }
  return filter;
}

function parseReasons(text: string): FailureReason[] {
  const reasons = text.split(',').map((r) => r.trim());
  const unknown = reasons.filter((r) => !(FAILURE_REASONS as readonly string[]).includes(r));
  if (unknown.length > 0 || reasons.length === 0) {
    throw new CliUsageError(
      `--reason: '${unknown[0] ?? text}' is not a failure reason. Use one or more of ${FAILURE_REASONS.join(', ')}, separated by commas.`,
    );
  }
  return reasons as FailureReason[];
}

/** Whether the filter selects anything less than every dead letter. */
export function isFiltered(filter: DeadLetterFilter): boolean {
  return Object.values(filter).some((value) => value !== undefined);
}

/** Whether `letter` matches every field of `filter`, its age counted at `now`. */
export function matchesFilter(
  letter: FilteredLetter,
  filter: DeadLetterFilter,
  now: Date,
): boolean {
  if (filter.topic !== undefined && !topicMatches(filter.topic, letter.topic)) return false;
  if (filter.reasons !== undefined && !filter.reasons.includes(letter.reason)) return false;
  if (filter.error !== undefined) {
    const { error } = filter;
    const test = (text: string): boolean =>
      typeof error === 'string' ? text.includes(error) : error.test(text);
    if (!test(letter.error) && !test(letter.errorClass)) return false;
  }
  const age = now.getTime() - letter.deadLetteredAt.getTime();
  if (filter.olderThanMs !== undefined && !(age > filter.olderThanMs)) return false;
  if (filter.newerThanMs !== undefined && !(age < filter.newerThanMs)) return false;
  return true;
}

/**
 * The error of a dead letter with what changes from message to message masked: its class and first
 * line, UUIDs and long hexadecimal ids as `<id>`, numbers as `<n>`. Letters with one signature
 * failed the same way: one bad deploy, one line.
 *
 * @example
 * errorSignature({ errorClass: 'Error', error: 'order 42 not found' }); // 'Error: order <n> not found'
 */
export function errorSignature(letter: Pick<DeadLetter, 'error' | 'errorClass'>): string {
  const firstLine = letter.error.split('\n', 1)[0].trim();
  const masked = firstLine
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, '<id>')
    .replace(/\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b/gi, '<id>')
    .replace(/\d+(?:\.\d+)?/g, '<n>');
  return `${letter.errorClass}: ${masked}`;
}

/** Dead letters that failed the same way. */
export interface ErrorGroup {
  /** The {@link errorSignature} they share. */
  readonly error: string;
  readonly count: number;
  /** Sorted. */
  readonly topics: readonly string[];
  readonly reasons: readonly FailureReason[];
  /** When the oldest of them was dead-lettered. */
  readonly firstSeen: Date;
  /** When the newest of them was dead-lettered. */
  readonly lastSeen: Date;
  /** The id of the newest of them, for `dlq show`. */
  readonly latestId: string;
}

type GroupedLetter = Pick<
  DeadLetter,
  'id' | 'topic' | 'reason' | 'error' | 'errorClass' | 'deadLetteredAt'
>;

interface GroupTally {
  count: number;
  readonly topics: Set<string>;
  readonly reasons: Set<FailureReason>;
  firstSeen: Date;
  lastSeen: Date;
  latestId: string;
}

/**
 * Groups dead letters by {@link errorSignature} as they are read: it holds one tally per kind of
 * error, never the letters, so a whole dead-letter queue can go through it.
 */
export class ErrorGrouping {
  private readonly tallies = new Map<string, GroupTally>();

  add(letter: GroupedLetter): void {
    const key = errorSignature(letter);
    const at = letter.deadLetteredAt;
    const tally = this.tallies.get(key);
    if (!tally) {
      this.tallies.set(key, {
        count: 1,
        topics: new Set([letter.topic]),
        reasons: new Set([letter.reason]),
        firstSeen: at,
        lastSeen: at,
        latestId: letter.id,
      });
      return;
    }
    tally.count++;
    tally.topics.add(letter.topic);
    tally.reasons.add(letter.reason);
    if (at < tally.firstSeen) tally.firstSeen = at;
    if (at >= tally.lastSeen) {
      tally.lastSeen = at;
      tally.latestId = letter.id;
    }
  }

  /** The groups, largest first (then the most recently seen first). */
  groups(): ErrorGroup[] {
    return [...this.tallies]
      .map(([error, t]) => ({
        error,
        count: t.count,
        topics: [...t.topics].sort(),
        reasons: [...t.reasons].sort(),
        firstSeen: t.firstSeen,
        lastSeen: t.lastSeen,
        latestId: t.latestId,
      }))
      .sort((a, b) => b.count - a.count || b.lastSeen.getTime() - a.lastSeen.getTime());
  }
}
