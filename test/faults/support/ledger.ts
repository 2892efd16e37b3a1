/**
 * The fault suite's ledger (RELIABILITY.md §7.2): one JSONL row per event in the life of a message,
 * so a checker can prove after the fact that nothing confirmed was lost.
 *
 * | row          | written by                    | when                                               |
 * | ------------ | ----------------------------- | -------------------------------------------------- |
 * | `sent`       | the test (producer)           | before `publish()` is called                       |
 * | `confirmed`  | the test                      | `publish()` resolved (broker confirm)              |
 * | `rejected`   | the test                      | `publish()` rejected; `reason` = the error's class |
 * | `handled`    | a consumer child process      | in the handler, after its work, before it returns  |
 * | `attempt`    | a consumer child process      | a handler call that throws (poison)                |
 * | `dead`       | the test                      | read from the dead-letter queue at the end         |
 * | `leftover`   | the test                      | still in a work or retry queue at the end          |
 * | `crash`      | a consumer child process      | an unhandled rejection or exception in the child   |
 *
 * Children write `handled-<pid>.jsonl` with `writeSync` + `fsyncSync` per row, so a SIGKILL right
 * after the handler returned cannot lose the row (the handler returns only after the fsync).
 */
import {
  appendFileSync,
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

export type LedgerRow =
  | { kind: 'sent'; id: string; seq: number; at: number }
  | { kind: 'confirmed'; id: string; at: number }
  | { kind: 'rejected'; id: string; reason: string; error: string; at: number }
  | {
      kind: 'handled' | 'attempt';
      id: string;
      seq?: number;
      attempt: number;
      redelivered: boolean;
      pid: number;
      at: number;
    }
  | {
      kind: 'dead';
      id: string;
      reason: string;
      errorClass: string;
      attempts: number;
      queue: string;
    }
  | { kind: 'leftover'; id: string; queue: string }
  | { kind: 'crash'; pid: number; error: string; at: number }
  | { kind: 'backend-error'; pid: number; error: string; at: number };

/** The test's side of the ledger: its own rows in memory and in `producer.jsonl`, children's rows from their files. */
export class Ledger {
  private readonly own: LedgerRow[] = [];
  private readonly offsets = new Map<string, { bytes: number; rows: LedgerRow[] }>();

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  /** Set once the run is over: a publish still settling then is kept in memory only. */
  closed = false;

  record(row: LedgerRow): void {
    this.own.push(row);
    if (this.closed) return;
    appendFileSync(join(this.dir, 'producer.jsonl'), `${JSON.stringify(row)}\n`);
  }

  /** Rows written by the consumer children so far (complete lines only; files are read incrementally). */
  childRows(): LedgerRow[] {
    const rows: LedgerRow[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!name.startsWith('handled-')) continue;
      const seen = this.offsets.get(name) ?? { bytes: 0, rows: [] };
      const buffer = readFileSync(join(this.dir, name));
      const end = buffer.lastIndexOf(0x0a) + 1;
      if (end > seen.bytes) {
        for (const line of buffer.subarray(seen.bytes, end).toString('utf8').split('\n')) {
          if (line) seen.rows.push(JSON.parse(line) as LedgerRow);
        }
        seen.bytes = end;
      }
      this.offsets.set(name, seen);
      rows.push(...seen.rows);
    }
    return rows;
  }

  rows(): LedgerRow[] {
    return [...this.own, ...this.childRows()];
  }

  /** Ids handled (a `handled` row) so far. */
  handledIds(): Set<string> {
    const ids = new Set<string>();
    for (const row of this.childRows()) if (row.kind === 'handled') ids.add(row.id);
    return ids;
  }
}

/** A child's writer: one fsync'ed line per row, in its own file (no interleaving between processes). */
export class ChildLedgerWriter {
  private readonly fd: number;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    this.fd = openSync(join(dir, `handled-${process.pid}.jsonl`), 'a');
  }

  write(row: LedgerRow): void {
    writeSync(this.fd, `${JSON.stringify(row)}\n`);
    fsyncSync(this.fd);
  }

  close(): void {
    closeSync(this.fd);
  }
}
