import type { DeadLetter } from '../backend/broker-backend.interface';
import type {
  DeadLetterDetail,
  DeadLetterGroup,
  DeadLetterGroups,
  DeadLetterSummary,
} from './dashboard-api';
import { type ErrorFingerprint, errorFingerprint } from './error-fingerprint';

/** `GET api/dead-letters?topic=&error=&q=`: which letters are listed. */
export interface DeadLetterFilter {
  /** The topic, exactly. */
  readonly topic?: string;
  /** Part of the error message or class, in any case. */
  readonly error?: string;
  /** Part of the message id or of the dead letter's id. */
  readonly q?: string;
}

/** Whether `letter` passes `filter` (every given part of it). */
export function matchesFilter(letter: DeadLetter, filter: DeadLetterFilter): boolean {
  if (filter.topic && letter.topic !== filter.topic) return false;
  if (filter.error) {
    const wanted = filter.error.toLowerCase();
    const seen = `${letter.errorClass}: ${letter.error}`.toLowerCase();
    if (!seen.includes(wanted)) return false;
  }
  if (filter.q && !letter.id.includes(filter.q) && !letter.messageId.includes(filter.q)) {
    return false;
  }
  return true;
}

interface GroupTally {
  readonly key: ErrorFingerprint;
  count: number;
  readonly topics: Set<string>;
  first: number;
  last: number;
}

/**
 * Groups dead letters by {@link errorFingerprint} as they are read (one pass over a dead-letter
 * queue of any size): every letter is counted in its group, and the newest `maxLetters` are kept
 * to be listed. Groups come out largest first.
 */
export class DeadLetterGrouping {
  private readonly groups = new Map<string, GroupTally>();
  /** Fingerprints by class and message: one hash per distinct error, not per letter. */
  private readonly known = new Map<string, ErrorFingerprint>();
  private kept: DeadLetterSummary[] = [];
  private total = 0;

  constructor(
    private readonly maxLetters: number,
    private readonly now: number = Date.now(),
  ) {}

  /** The group of `letter` (its fingerprint, class and message shape). */
  fingerprintOf(letter: Pick<DeadLetter, 'errorClass' | 'error'>): ErrorFingerprint {
    const key = `${letter.errorClass}\0${letter.error}`;
    let found = this.known.get(key);
    if (!found) this.known.set(key, (found = errorFingerprint(letter.errorClass, letter.error)));
    return found;
  }

  add(letter: DeadLetter, connection: string): void {
    this.total++;
    const key = this.fingerprintOf(letter);
    let group = this.groups.get(key.fingerprint);
    if (!group) {
      group = { key, count: 0, topics: new Set(), first: Infinity, last: -Infinity };
      this.groups.set(key.fingerprint, group);
    }
    group.count++;
    group.topics.add(letter.topic);
    group.first = Math.min(group.first, letter.firstFailedAt.getTime());
    group.last = Math.max(group.last, letter.lastFailedAt.getTime());
    this.kept.push(summaryOf(letter, connection, this.now));
    if (this.kept.length >= 2 * this.maxLetters) this.keepNewest();
  }

  result(): DeadLetterGroups {
    this.keepNewest();
    const letters = new Map<string, DeadLetterSummary[]>();
    for (const summary of this.kept) {
      const { fingerprint } = this.fingerprintOf(summary);
      const list = letters.get(fingerprint) ?? [];
      list.push(summary);
      letters.set(fingerprint, list);
    }
    const groups: DeadLetterGroup[] = [...this.groups.values()]
      .sort((a, b) => b.count - a.count || b.last - a.last)
      .map(({ key, count, topics, first, last }) => ({
        fingerprint: key.fingerprint,
        errorClass: key.errorClass,
        errorShape: key.shape,
        count,
        topics: [...topics].sort(),
        firstFailedAt: new Date(first).toISOString(),
        lastFailedAt: new Date(last).toISOString(),
        letters: letters.get(key.fingerprint) ?? [],
      }));
    return { total: this.total, groups, truncated: this.total > this.kept.length };
  }

  /** The newest `maxLetters` kept, newest first. */
  private keepNewest(): void {
    this.kept.sort((a, b) => Date.parse(b.deadLetteredAt) - Date.parse(a.deadLetteredAt));
    if (this.kept.length > this.maxLetters) this.kept = this.kept.slice(0, this.maxLetters);
  }
}

/** What the list shows of one letter. */
export function summaryOf(letter: DeadLetter, connection: string, now: number): DeadLetterSummary {
  return {
    id: letter.id,
    messageId: letter.messageId,
    connection,
    topic: letter.topic,
    queue: letter.queue,
    reason: letter.reason,
    error: letter.error,
    errorClass: letter.errorClass,
    attempts: letter.attempts,
    firstFailedAt: letter.firstFailedAt.toISOString(),
    lastFailedAt: letter.lastFailedAt.toISOString(),
    deadLetteredAt: letter.deadLetteredAt.toISOString(),
    ageMs: Math.max(0, now - letter.deadLetteredAt.getTime()),
  };
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function inflatedBody(letter: DeadLetter, inflate?: (letter: DeadLetter) => Buffer): Buffer {
  if (!inflate) return letter.body;
  try {
    return inflate(letter);
  } catch {
    return letter.body;
  }
}

/**
 * One letter with its headers and body: the body as text when it is valid UTF-8, else base64; at
 * most `maxBodyBytes` of it (a text is cut before a character that would not fit whole). `inflate`
 * undoes the body's content encoding (the connection's codec, bounded by its `maxBodyBytes`); a body
 * it cannot undo is shown as it is stored.
 */
export function detailOf(
  letter: DeadLetter,
  connection: string,
  maxBodyBytes: number,
  now: number,
  inflate?: (letter: DeadLetter) => Buffer,
): DeadLetterDetail {
  const body = inflatedBody(letter, inflate);
  const truncated = body.length > maxBodyBytes;
  let text: string | undefined;
  try {
    text = UTF8.decode(body);
  } catch {
    text = undefined;
  }
  let shown: string;
  if (text !== undefined) {
    let end = Math.min(body.length, maxBodyBytes);
    // Back off to the first byte of the character the cut would split (continuations: 10xxxxxx).
    if (truncated) while (end > 0 && (body[end] & 0xc0) === 0x80) end--;
    shown = truncated ? body.subarray(0, end).toString('utf8') : text;
  } else {
    shown = body.subarray(0, maxBodyBytes).toString('base64');
  }
  return {
    ...summaryOf(letter, connection, now),
    headers: letter.headers,
    ...(letter.contentType !== undefined && { contentType: letter.contentType }),
    ...(letter.contentEncoding !== undefined && { contentEncoding: letter.contentEncoding }),
    body: shown,
    bodyEncoding: text !== undefined ? 'utf8' : 'base64',
    bodyBytes: body.length,
    bodyTruncated: truncated,
  };
}
