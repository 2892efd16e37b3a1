import { BatchFailure } from '../errors/messaging.errors';

/** The timers a collector waits with: the real ones, or a test's. */
export interface BatchTimers {
  set(callback: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const REAL_TIMERS: BatchTimers = {
  set: (callback, ms) => setTimeout(callback, ms),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** What a {@link BatchCollector} is built with. */
export interface BatchCollectorOptions<T, R> {
  /** A batch is handed over as soon as it holds this many items. */
  readonly size: number;
  /** ...or this long after its first item arrived, whatever it holds then. */
  readonly maxWaitMs: number;
  /** Handles one batch: one result per item, in the same order. Should never reject. */
  readonly run: (items: T[]) => Promise<R[]>;
  /** The result of an item that was not handled: collected when the collector closed, or `run` failed. */
  readonly unhandled: R;
  readonly timers?: BatchTimers;
}

/**
 * Gathers items (deliveries) into batches of 1..`size`, in arrival order, and gives each item the
 * promise of its own result: it resolves once its batch ran. The items stay in the broker's hands
 * (unacknowledged, each holding its delivery's settlement) while they wait, so a crash loses none.
 *
 * | event                                  | what happens                                         |
 * | -------------------------------------- | ---------------------------------------------------- |
 * | the first item of a batch arrives      | a timer of `maxWaitMs` starts                        |
 * | the batch reaches `size` items         | it is handed to `run` at once; the next item starts a new batch |
 * | `maxWaitMs` passed since the first item | the batch is handed to `run` as it is               |
 * | `close()`                              | waiting items resolve `unhandled` (back to the broker), later ones too |
 *
 * A batch handed over is no longer this collector's: `run` decides (it may still wait for a handler
 * slot, and requeue its items if the server closes first).
 */
export class BatchCollector<T, R> {
  private items: T[] = [];
  private results: Array<(result: R) => void> = [];
  private timer: unknown;
  private closed = false;
  private readonly timers: BatchTimers;

  constructor(private readonly options: BatchCollectorOptions<T, R>) {
    this.timers = options.timers ?? REAL_TIMERS;
  }

  /** How many items wait for their batch to fill. */
  get waiting(): number {
    return this.items.length;
  }

  /** Adds `item` to the batch being collected; resolves with its own result once its batch ran. */
  add(item: T): Promise<R> {
    if (this.closed) return Promise.resolve(this.options.unhandled);
    return new Promise<R>((resolve) => {
      this.items.push(item);
      this.results.push(resolve);
      if (this.items.length >= this.options.size) this.handOver();
      else if (this.items.length === 1) {
        this.timer = this.timers.set(() => this.handOver(), this.options.maxWaitMs);
      }
    });
  }

  /** Stops collecting: every waiting item, and any added later, resolves `unhandled`. */
  close(): void {
    this.closed = true;
    this.stopTimer();
    const results = this.results;
    this.items = [];
    this.results = [];
    for (const resolve of results) resolve(this.options.unhandled);
  }

  private handOver(): void {
    this.stopTimer();
    const items = this.items;
    const results = this.results;
    this.items = [];
    this.results = [];
    const unhandled = (): void => results.forEach((resolve) => resolve(this.options.unhandled));
    this.options.run(items).then((settled) => {
      results.forEach((resolve, i) =>
        resolve(i < settled.length ? settled[i] : this.options.unhandled),
      );
    }, unhandled);
  }

  private stopTimer(): void {
    if (this.timer === undefined) return;
    this.timers.clear(this.timer);
    this.timer = undefined;
  }
}

/** How a batch handler's throw fails its items: the error of each failed item, by its index. */
export interface ItemFailures {
  /** Item index -> its error; an index not in it succeeded. */
  readonly failed: ReadonlyMap<number, unknown>;
  /** Why a `BatchFailure` was not taken as it is (every item then failed with it). */
  readonly invalid?: string;
}

/**
 * Which of `count` items a batch handler's `thrown` fails. A `BatchFailure` fails the items it lists
 * (the first error of an index listed twice) and no other; any other throw fails every item. A
 * `BatchFailure` naming an index that is not one of the batch cannot be trusted to say which items
 * succeeded, so it fails every item too (at-least-once: a retry may repeat work, never lose it).
 */
export function itemFailures(thrown: unknown, count: number): ItemFailures {
  const all = (error: unknown): Map<number, unknown> =>
    new Map(Array.from({ length: count }, (_, index) => [index, error]));
  if (!(thrown instanceof BatchFailure)) return { failed: all(thrown) };
  const bad = thrown.failures.find(
    (f) => !Number.isInteger(f.index) || f.index < 0 || f.index >= count,
  );
  if (bad !== undefined) {
    return {
      failed: all(thrown),
      invalid: `BatchFailure names index ${String(bad.index)}, not one of the batch's 0..${count - 1}: every item of the batch failed with it`,
    };
  }
  const failed = new Map<number, unknown>();
  for (const { index, error } of thrown.failures) if (!failed.has(index)) failed.set(index, error);
  return { failed };
}
