/**
 * The order of a service's dead letters on RabbitMQ, carried by each letter rather than read from
 * its place in the queue.
 *
 * A queue is read by taking its messages and giving them back, and a quorum queue (the default)
 * does not put them back where they were: on RabbitMQ 3.10, 60 letters listed once come back rotated
 * (given back one by one) or shuffled (given back by closing the channel), and the next listing
 * reads another order. Paging by position then skipped letters and showed others twice. So every
 * listing sorts by this key, and pages over it:
 *
 * | part    | read from                                                  | why                                              |
 * | ------- | ---------------------------------------------------------- | ------------------------------------------------ |
 * | `order` | header `x-messaging-dead-letter-order`: microseconds since | finer than the millisecond of `deadLetteredAt`: |
 * |         | the epoch when it was dead-lettered, one more than the     | letters written in the same millisecond keep the |
 * |         | last when the clock has not moved ({@link DeadLetterClock})| order they were written in                       |
 * |         | else `deadLetteredAt`, in microseconds                     | letters written before the header existed, and   |
 * |         |                                                            | those the broker dead-lettered (`x-death` time)  |
 * | `id`    | the dead letter's id                                       | two instances writing in the same microsecond   |
 *
 * A letter dead-lettered while someone pages sorts after every letter already there (as long as
 * the instances' clocks agree to within the time between the two), so it shows on a later page.
 */
import type { DeadLetter } from '../../backend/broker-backend.interface';

/** Header of a dead letter written by this backend: its place in the order (see the file comment). */
export const DEAD_LETTER_ORDER_HEADER = 'x-messaging-dead-letter-order';

/** Where a dead letter sorts: by `order`, then by `id`. */
export interface DeadLetterKey {
  readonly order: number;
  readonly id: string;
}

/** Negative when `a` sorts before `b`, 0 for the same letter, positive after. */
export function compareKeys(a: DeadLetterKey, b: DeadLetterKey): number {
  if (a.order !== b.order) return a.order < b.order ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** The key of `letter`, read with its raw AMQP `headers` (which still carry the order header). */
export function deadLetterKey(
  letter: DeadLetter,
  headers: Readonly<Record<string, unknown>>,
): DeadLetterKey {
  const stamped = headers[DEAD_LETTER_ORDER_HEADER];
  const order =
    typeof stamped === 'number' && Number.isFinite(stamped)
      ? stamped
      : letter.deadLetteredAt.getTime() * 1000;
  return { order, id: letter.id };
}

/**
 * Hands out the order stamps of the dead letters one subscription writes: the wall clock in
 * microseconds, or one more than the last stamp when the clock has not moved on (or went back).
 */
export class DeadLetterClock {
  private last = 0;

  next(nowMs: number = Date.now()): number {
    this.last = Math.max(this.last + 1, nowMs * 1000);
    return this.last;
  }
}

/**
 * What one pass over a dead-letter queue keeps: of the entries offered that sort after `after`, the
 * first `count` by key, and only as many of those as fit in `bytes` (at least one). Memory stays near
 * that bound: entries are sorted and cut back whenever twice as many are held.
 */
export class FirstByKey<T> {
  private held: { key: DeadLetterKey; value: T; bytes: number }[] = [];
  private heldBytes = 0;
  private cut = false;

  constructor(
    private readonly after: DeadLetterKey | undefined,
    private readonly count: number,
    private readonly bytes = Infinity,
  ) {}

  /** Considers one entry; `bytes` is what holding it costs. */
  offer(key: DeadLetterKey, value: T, bytes = 0): void {
    if (this.after !== undefined && compareKeys(key, this.after) <= 0) return;
    this.held.push({ key, value, bytes });
    this.heldBytes += bytes;
    if (this.held.length >= 2 * this.count || this.heldBytes > 2 * this.bytes) this.trim();
  }

  /** The entries kept, in order, and whether some that sort after `after` were left out. */
  result(): { entries: { key: DeadLetterKey; value: T }[]; more: boolean } {
    this.trim();
    return { entries: this.held.map(({ key, value }) => ({ key, value })), more: this.cut };
  }

  private trim(): void {
    this.held.sort((a, b) => compareKeys(a.key, b.key));
    let kept = 0;
    let total = 0;
    while (
      kept < this.held.length &&
      kept < this.count &&
      (kept === 0 || total + this.held[kept].bytes <= this.bytes)
    ) {
      total += this.held[kept].bytes;
      kept++;
    }
    if (kept < this.held.length) {
      this.cut = true;
      this.held.length = kept;
    }
    this.heldBytes = total;
  }
}

/**
 * One read of a whole dead-letter queue, in whatever order the queue gives: `visit` gets each letter,
 * its key and what holding it costs (its body's bytes).
 */
export type LetterPass = (
  visit: (letter: DeadLetter, key: DeadLetterKey, bytes: number) => void,
) => Promise<void>;

/**
 * The page of `limit` letters after the first `offset`, in key order: one pass for the first page,
 * two for a later one (the first finds the key of the letter before the page, holding keys only).
 */
export async function pageByKey(
  pass: LetterPass,
  offset: number,
  limit: number,
): Promise<DeadLetter[]> {
  let after: DeadLetterKey | undefined;
  if (offset > 0) {
    const before = new FirstByKey<undefined>(undefined, offset);
    await pass((_letter, key) => before.offer(key, undefined));
    const { entries } = before.result();
    if (entries.length < offset) return [];
    after = entries[offset - 1].key;
  }
  const page = new FirstByKey<DeadLetter>(after, limit);
  await pass((letter, key) => page.offer(key, letter));
  return page.result().entries.map((entry) => entry.value);
}

/**
 * Calls `visit` on every letter in key order until it returns false, a batch (at most `letters`
 * letters and `bytes` of bodies) per pass: each pass keeps the next batch after the last one visited.
 */
export async function scanByKey(
  pass: LetterPass,
  visit: (letter: DeadLetter) => boolean | void,
  batch: { readonly letters: number; readonly bytes: number },
): Promise<void> {
  for (let after: DeadLetterKey | undefined; ;) {
    const next = new FirstByKey<DeadLetter>(after, batch.letters, batch.bytes);
    await pass((letter, key, bytes) => next.offer(key, letter, bytes));
    const { entries, more } = next.result();
    for (const { value } of entries) if (visit(value) === false) return;
    if (!more) return;
    after = entries[entries.length - 1].key;
  }
}
