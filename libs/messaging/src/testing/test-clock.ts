import type { DelayScheduler } from '../backends/memory/delay-scheduler';

interface ClockTask {
  readonly at: number;
  /** Order of scheduling, so that tasks due at the same time run in the order they were scheduled. */
  readonly seq: number;
  readonly run: () => void;
}

/**
 * A clock that moves only when a test moves it: give it to an `InMemoryBroker` as its `scheduler`
 * and retries and delayed publishes wait for {@link advance} or {@link runNext} instead of real time,
 * so a 30 s backoff takes no time at all. It moves the broker's delays only: `Date.now()`, request
 * timeouts and the application's own timers keep real time (no Jest fake timers needed).
 * `MessagingTestKit` with `{ clock: 'manual' }` builds one and settles the broker between its steps.
 *
 * @example
 * const clock = new TestClock();
 * const broker = new InMemoryBroker({ scheduler: clock });
 * clock.advance(10_000); // runs every retry due in the next 10 s, in order
 */
export class TestClock implements DelayScheduler {
  private nowMs = 0;
  private seq = 0;
  private tasks: ClockTask[] = [];

  /** Milliseconds the clock has moved since it was created. */
  get now(): number {
    return this.nowMs;
  }

  /** Delays scheduled and not run yet. */
  get pending(): number {
    return this.tasks.length;
  }

  /** When the next delay is due (in {@link now}'s time), or undefined when none is pending. */
  get nextAt(): number | undefined {
    return this.tasks[0]?.at;
  }

  schedule(delayMs: number, task: () => void): void {
    const entry: ClockTask = { at: this.nowMs + Math.max(0, delayMs), seq: this.seq++, run: task };
    const index = this.tasks.findIndex((t) => t.at > entry.at);
    if (index < 0) this.tasks.push(entry);
    else this.tasks.splice(index, 0, entry);
  }

  /**
   * Runs the earliest delay due at or before `until` (any, without it), moving the clock to its time;
   * returns false, without moving the clock, when there is none.
   */
  runNext(until = Infinity): boolean {
    const task = this.tasks[0];
    if (!task || task.at > until) return false;
    this.tasks.shift();
    this.nowMs = Math.max(this.nowMs, task.at);
    task.run();
    return true;
  }

  /**
   * Moves the clock `ms` forward, running every delay due on the way, in order (a delay a task
   * schedules runs too if it falls within the window). Synchronous: what the tasks start (handlers)
   * runs afterwards; `MessagingTestKit.clock.advance()` lets it settle between steps.
   */
  advance(ms: number): void {
    const until = this.nowMs + checkMs(ms);
    while (this.runNext(until));
    this.nowMs = until;
  }

  /** Moves the clock to `until` without running anything (for a caller that ran the steps itself). */
  moveTo(until: number): void {
    this.nowMs = Math.max(this.nowMs, until);
  }
}

function checkMs(ms: number): number {
  if (!Number.isFinite(ms) || ms < 0) {
    throw new RangeError(`TestClock: advance() takes milliseconds >= 0, got ${ms}`);
  }
  return ms;
}
