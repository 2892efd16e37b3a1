import { longTimeout } from '../../backend/long-timeout';
import { MessagingConfigError } from '../../errors/messaging.errors';

/**
 * Runs a task after a delay: how an in-memory broker holds retries and delayed publishes. The seam a
 * test replaces with a clock it moves itself (`TestClock` of `nest-messaging/testing`), so that a
 * 30 s backoff does not take 30 s; the default is the process's timers.
 */
export interface DelayScheduler {
  /** Runs `task` once, `delayMs` milliseconds from now. Must not keep the process alive by itself. */
  schedule(delayMs: number, task: () => void): void;
}

/**
 * The process's timers, unref'd: a pending retry or delayed publish never keeps the process alive.
 * A delay longer than a timer can hold (24.8 days) waits in several. The default scheduler of
 * `InMemoryBroker`.
 */
export const REAL_TIMERS: DelayScheduler = Object.freeze({
  schedule(delayMs: number, task: () => void): void {
    longTimeout(delayMs, task);
  },
});

/** `scheduler`, checked, or {@link REAL_TIMERS} without one. */
export function resolveScheduler(
  scheduler: DelayScheduler | undefined,
  where: string,
): DelayScheduler {
  if (scheduler === undefined) return REAL_TIMERS;
  if (typeof (scheduler as Partial<DelayScheduler> | null)?.schedule !== 'function') {
    throw new MessagingConfigError(
      `${where}: scheduler must have a schedule(delayMs, task) method, e.g. new TestClock()`,
    );
  }
  return scheduler;
}
