/**
 * Small measurements shared by the Redis and NATS scenarios, read from the ledger after a run.
 */
import type { LedgerRow } from './ledger';

/**
 * Time from a fault (`since`, epoch ms) to the first confirm of a publish sent after it: how long
 * publishing was stopped (publishes in flight at the fault are not counted). Undefined when no
 * publish sent after it was confirmed.
 */
export function resumedMs(rows: readonly LedgerRow[], since: number): number | undefined {
  const sentAfter = new Set<string>();
  for (const row of rows) if (row.kind === 'sent' && row.at >= since) sentAfter.add(row.id);
  let first: number | undefined;
  for (const row of rows) {
    if (
      row.kind === 'confirmed' &&
      sentAfter.has(row.id) &&
      (first === undefined || row.at < first)
    ) {
      first = row.at;
    }
  }
  return first === undefined ? undefined : first - since;
}
