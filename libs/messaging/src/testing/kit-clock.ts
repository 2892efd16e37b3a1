import type { InMemoryBroker } from '../backends/memory/in-memory.broker';
import { MessagingConfigError } from '../errors/messaging.errors';
import type { TestClock } from './test-clock';

/**
 * Time for a test kit's broker: with `{ clock: 'manual' }` retries and delayed publishes wait until
 * the test moves the clock, and moving it settles the app between each delay it runs.
 */
export interface MessagingTestClock {
  /** `real`: delays take real time (the default); `manual`: they wait for this clock. */
  readonly mode: 'real' | 'manual';
  /** Milliseconds the manual clock has moved (0 with real time). */
  readonly now: number;
  /** Retries and delayed publishes waiting for their time. */
  readonly pendingDelays: number;
  /**
   * Moves time `ms` forward: settles the app, then runs each delay that falls due on the way, in
   * order, settling the app after each (so a retry that fails again and is due within the window runs
   * too). Resolves once the app settled at the new time.
   */
  advance(ms: number): Promise<void>;
  /**
   * Runs every pending delay, earliest first, settling the app after each, until none is left: every
   * retry has run and every message that keeps failing is a dead letter. Rejects after `maxDelays`
   * (10,000) delays, as a message that schedules itself again for ever would never end.
   */
  runAllDelays(options?: { maxDelays?: number }): Promise<void>;
}

/** A kit's clock over its broker: `settle` waits until nothing runnable is left (see the kit). */
export class KitClock implements MessagingTestClock {
  constructor(
    private readonly clock: TestClock | undefined,
    private readonly broker: InMemoryBroker,
    private readonly settle: () => Promise<void>,
  ) {}

  get mode(): 'real' | 'manual' {
    return this.clock ? 'manual' : 'real';
  }

  get now(): number {
    return this.clock?.now ?? 0;
  }

  get pendingDelays(): number {
    return this.broker.work().delayed;
  }

  async advance(ms: number): Promise<void> {
    const clock = this.manual('advance');
    if (!Number.isFinite(ms) || ms < 0) {
      throw new RangeError(`clock.advance() takes milliseconds >= 0, got ${ms}`);
    }
    const until = clock.now + ms;
    await this.settle();
    while (clock.runNext(until)) await this.settle();
    clock.moveTo(until);
  }

  async runAllDelays({ maxDelays = 10_000 }: { maxDelays?: number } = {}): Promise<void> {
    const clock = this.manual('runAllDelays');
    await this.settle();
    for (let ran = 0; clock.runNext(); ran++) {
      if (ran >= maxDelays) {
        throw new Error(
          `clock.runAllDelays() ran ${maxDelays} delays and more keep coming (${clock.pending} pending): ` +
            `a message that is retried or re-published for ever? Use clock.advance(ms) to move a bounded time`,
        );
      }
      await this.settle();
    }
  }

  private manual(method: string): TestClock {
    if (!this.clock) {
      throw new MessagingConfigError(
        `clock.${method}() needs a manual clock: create the kit with { clock: 'manual' }`,
      );
    }
    return this.clock;
  }
}
