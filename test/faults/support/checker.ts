/**
 * The checker of RELIABILITY.md §7.2, in Jepsen's total-queue vocabulary, as one pure function of
 * the ledger's rows:
 *
 * | count        | meaning                                                                      |
 * | ------------ | ---------------------------------------------------------------------------- |
 * | `lost`       | confirmed, yet never handled, never dead-lettered, not left in a queue        |
 * | `duplicated` | handled more than once (at-least-once allows it; each scenario bounds it)     |
 * | `copies`     | of `duplicated`: no handling of it was marked redelivered, so a second copy   |
 * |              | was in the queue (a publish or retry copy written twice), not a redelivery   |
 * | `unexpected` | handled or dead-lettered but never sent by this run                           |
 * | `unsettled`  | sent, and its `publish()` neither resolved nor rejected                      |
 * | `rejected`   | `publish()` rejected, by error class (`rejectedBy`)                          |
 * | `deadTwice`  | dead-lettered more than once                                                  |
 * | `crashes`    | unhandled rejections / exceptions reported by the consumer children          |
 */
import type { LedgerRow } from './ledger';

export interface CheckReport {
  sent: number;
  confirmed: number;
  rejected: number;
  rejectedBy: Record<string, number>;
  /** The first error message of each rejection class. */
  rejectedSample: Record<string, string>;
  handled: number;
  handledRows: number;
  dead: number;
  deadBy: Record<string, number>;
  leftover: number;
  lost: string[];
  duplicated: string[];
  copies: string[];
  unexpected: string[];
  unsettled: string[];
  deadTwice: string[];
  crashes: string[];
  backendErrors: string[];
}

export function check(rows: readonly LedgerRow[]): CheckReport {
  const sent = new Set<string>();
  const confirmed = new Set<string>();
  const rejected = new Map<string, string>();
  const handledCount = new Map<string, number>();
  const redelivered = new Set<string>();
  const deadCount = new Map<string, number>();
  const deadBy: Record<string, number> = {};
  const rejectedSample: Record<string, string> = {};
  const leftover = new Set<string>();
  const crashes: string[] = [];
  const backendErrors: string[] = [];
  let handledRows = 0;
  for (const row of rows) {
    switch (row.kind) {
      case 'sent':
        sent.add(row.id);
        break;
      case 'confirmed':
        confirmed.add(row.id);
        break;
      case 'rejected':
        rejected.set(row.id, row.reason);
        rejectedSample[row.reason] ??= row.error;
        break;
      case 'handled':
        handledRows++;
        if (row.redelivered) redelivered.add(row.id);
        handledCount.set(row.id, (handledCount.get(row.id) ?? 0) + 1);
        break;
      case 'dead':
        deadCount.set(row.id, (deadCount.get(row.id) ?? 0) + 1);
        deadBy[row.reason] = (deadBy[row.reason] ?? 0) + 1;
        break;
      case 'leftover':
        leftover.add(row.id);
        break;
      case 'crash':
        crashes.push(`pid ${row.pid}: ${row.error}`);
        break;
      case 'backend-error':
        backendErrors.push(`pid ${row.pid}: ${row.error}`);
        break;
      default:
        break;
    }
  }
  const rejectedBy: Record<string, number> = {};
  for (const reason of rejected.values()) rejectedBy[reason] = (rejectedBy[reason] ?? 0) + 1;
  const seen = (id: string): boolean =>
    handledCount.has(id) || deadCount.has(id) || leftover.has(id);
  return {
    sent: sent.size,
    confirmed: confirmed.size,
    rejected: rejected.size,
    rejectedBy,
    rejectedSample,
    handled: handledCount.size,
    handledRows,
    dead: deadCount.size,
    deadBy,
    leftover: leftover.size,
    lost: [...confirmed].filter((id) => !seen(id)),
    duplicated: [...handledCount].filter(([, n]) => n > 1).map(([id]) => id),
    copies: [...handledCount].filter(([id, n]) => n > 1 && !redelivered.has(id)).map(([id]) => id),
    unexpected: [...new Set([...handledCount.keys(), ...deadCount.keys()])].filter(
      (id) => !sent.has(id),
    ),
    unsettled: [...sent].filter((id) => !confirmed.has(id) && !rejected.has(id)),
    deadTwice: [...deadCount].filter(([, n]) => n > 1).map(([id]) => id),
    crashes,
    backendErrors,
  };
}

/** The report as one line for logs and docs/reliability.md (ids replaced by their counts). */
export function summarize(report: CheckReport): string {
  const n = (ids: string[]) => ids.length;
  return (
    `sent ${report.sent}, confirmed ${report.confirmed}, rejected ${report.rejected}` +
    `${report.rejected ? ` ${JSON.stringify(report.rejectedSample)}` : ''}, handled ${report.handled}` +
    ` (${report.handledRows} calls), dead ${report.dead}` +
    `${report.dead ? ` ${JSON.stringify(report.deadBy)}` : ''}, leftover ${report.leftover}; ` +
    `lost ${n(report.lost)}, duplicated ${n(report.duplicated)} (${n(report.copies)} copies), unexpected ${n(report.unexpected)}, ` +
    `unsettled ${n(report.unsettled)}, crashes ${n(report.crashes)}`
  );
}
