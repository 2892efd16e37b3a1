/**
 * Measuring helpers shared by every contender: message bodies of an exact size, a bounded pool of
 * in-flight calls, a tally of unique ids, percentiles and peak RSS. Plain Node only.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { BenchMessage, Counts } from './protocol';

/** Builds messages whose JSON body is exactly `bodyBytes` long, whatever the id's digits. */
export function messageFactory(bodyBytes: number): (id: number) => BenchMessage {
  const pads = new Map<number, string>();
  return (id) => {
    const digits = String(id).length;
    let pad = pads.get(digits);
    if (pad === undefined) {
      const overhead = JSON.stringify({ id, pad: '' }).length;
      pad = 'x'.repeat(Math.max(0, bodyBytes - overhead));
      pads.set(digits, pad);
    }
    return { id, pad };
  };
}

/** Runs `task(i)` for i in [0, total) with at most `inFlight` pending; rejects on the first error. */
export async function pool(
  total: number,
  inFlight: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < total) {
      const i = next++;
      try {
        await task(i);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, total) }, worker));
}

/** Counts the distinct ids 0..expected-1 handled, and resolves `done` once all were. */
export class Tally {
  readonly counts: Counts;
  readonly done: Promise<void>;
  private readonly seen: Uint8Array;
  private resolveDone!: () => void;
  private lastProgress = Date.now();
  /** When the first id was recorded (`nowMs()`), for rates measured from the first delivery. */
  firstAt?: number;

  constructor(expected: number) {
    this.seen = new Uint8Array(expected);
    this.counts = {
      expected,
      published: 0,
      confirmed: 0,
      receivedUnique: 0,
      duplicates: 0,
      unknown: 0,
      injectedFailures: 0,
    };
    this.done = new Promise<void>((resolve) => (this.resolveDone = resolve));
    if (expected === 0) this.resolveDone();
  }

  /** Records one successful handling of `id`. */
  record(id: unknown): void {
    this.lastProgress = Date.now();
    this.firstAt ??= nowMs();
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= this.seen.length) {
      this.counts.unknown++;
      return;
    }
    if (this.seen[id] === 1) {
      this.counts.duplicates++;
      return;
    }
    this.seen[id] = 1;
    if (++this.counts.receivedUnique === this.counts.expected) this.resolveDone();
  }

  /** Resolves when every id was seen; rejects when nothing arrived for `stallMs`. */
  async complete(stallMs: number): Promise<void> {
    this.lastProgress = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setInterval(() => {
        if (Date.now() - this.lastProgress > stallMs) {
          const c = this.counts;
          reject(
            new Error(
              `stalled: ${c.receivedUnique} of ${c.expected} messages received, nothing for ${stallMs} ms`,
            ),
          );
        }
      }, 250);
    });
    try {
      await Promise.race([this.done, stalled]);
    } finally {
      clearInterval(timer);
    }
  }

  /** The missing/unknown ids as an error message, or undefined when the count is exact. */
  verdict(): string | undefined {
    const c = this.counts;
    if (c.confirmed !== c.published) return `${c.published - c.confirmed} publishes not confirmed`;
    if (c.receivedUnique !== c.expected) {
      return `lost ${c.expected - c.receivedUnique} of ${c.expected} messages`;
    }
    if (c.unknown > 0) return `${c.unknown} unexpected ids or mismatched replies`;
    return undefined;
  }
}

/** Milliseconds since an arbitrary origin, sub-millisecond resolution. */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** The `p`-th percentile (0..100) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Peak resident set size of this process so far, in MB. */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** Waits ~0 ms (next turn of the event loop) or ~1 ms, at random: the backlog's slow handler. */
export function briefPause(maxMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (Math.random() < 0.5 || maxMs <= 0) setImmediate(resolve);
    else setTimeout(resolve, Math.max(1, Math.round(Math.random() * maxMs)));
  });
}

/** Version of an installed package, resolved from this file's location (`?` when not found). */
export function packageVersion(name: string): string {
  try {
    let dir = dirname(require.resolve(name));
    while (dir !== dirname(dir)) {
      const file = join(dir, 'package.json');
      if (existsSync(file)) {
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === name) return pkg.version ?? '?';
      }
      dir = dirname(dir);
    }
  } catch {
    // not installed, or not resolvable from CommonJS
  }
  return '?';
}
