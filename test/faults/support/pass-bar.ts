/**
 * The universal pass bar of RELIABILITY.md §7.2, as one assertion with a readable diff: nothing
 * lost, nothing unexpected, every publish settled, no crash or unhandled rejection in a consumer
 * process, nothing stuck in a queue, duplicates within the scenario's bound, dead letters as the
 * scenario expects. (An unhandled rejection in the test process, where the producer runs, fails the
 * test by itself: Jest 30 reports it as the test's error.)
 */
import type { CheckReport } from './checker';

/**
 * Second copies allowed per connection-level fault: the publishes whose confirms were in flight
 * when the link broke (a few tens at the loads used here), written again with the same messageId.
 */
export const COPIES_PER_FAULT = 50;

export interface BarOptions {
  /**
   * Messages handled again on a redelivery (the unacked window at a fault: prefetch x consumers
   * per fault). @default 0
   */
  duplicatedAtMost?: number;
  /**
   * Messages handled twice because a second copy was written (a publish whose confirm was lost with
   * its connection is written again, same messageId: at-least-once publishing). @default 0
   */
  copiesAtMost?: number;
  /** Messages that must end dead-lettered (once each). @default 0 */
  dead?: number;
  /** Publishes allowed to reject (e.g. a typed error the scenario provokes). @default 0 */
  rejected?: number;
}

export function expectPassBar(report: CheckReport, options: BarOptions = {}): void {
  expect({
    lost: report.lost.length,
    unexpected: report.unexpected.length,
    unsettled: report.unsettled.length,
    rejected: report.rejected,
    leftover: report.leftover,
    dead: report.dead,
    deadTwice: report.deadTwice.length,
    crashes: report.crashes,
  }).toEqual({
    lost: 0,
    unexpected: 0,
    unsettled: 0,
    rejected: options.rejected ?? 0,
    leftover: 0,
    dead: options.dead ?? 0,
    deadTwice: 0,
    crashes: [],
  });
  const redelivered = report.duplicated.length - report.copies.length;
  expect(redelivered).toBeLessThanOrEqual(options.duplicatedAtMost ?? 0); // handled again after a redelivery
  expect(report.copies.length).toBeLessThanOrEqual(options.copiesAtMost ?? 0); // a second copy written
}
