/**
 * The universal pass bar of RELIABILITY.md §7.2, as one assertion with a readable diff: nothing
 * lost, nothing unexpected, every publish settled, no crash or unhandled rejection anywhere, nothing
 * stuck in a queue, duplicates within the scenario's bound, dead letters as the scenario expects.
 */
import type { CheckReport } from './checker';
import type { FaultRun } from './fault-run';

export interface BarOptions {
  /** Deliveries handled twice allowed by the scenario (at-least-once across a fault). @default 0 */
  duplicatedAtMost?: number;
  /** Messages that must end dead-lettered (once each). @default 0 */
  dead?: number;
  /** Publishes allowed to reject (e.g. a typed error the scenario provokes). @default 0 */
  rejected?: number;
}

export function expectPassBar(report: CheckReport, run: FaultRun, options: BarOptions = {}): void {
  expect({
    lost: report.lost.length,
    unexpected: report.unexpected.length,
    unsettled: report.unsettled.length,
    rejected: report.rejected,
    leftover: report.leftover,
    dead: report.dead,
    deadTwice: report.deadTwice.length,
    crashes: report.crashes,
    unhandledRejections: run.unhandled.map(String),
  }).toEqual({
    lost: 0,
    unexpected: 0,
    unsettled: 0,
    rejected: options.rejected ?? 0,
    leftover: 0,
    dead: options.dead ?? 0,
    deadTwice: 0,
    crashes: [],
    unhandledRejections: [],
  });
  expect(report.duplicated.length).toBeLessThanOrEqual(options.duplicatedAtMost ?? 0);
}
