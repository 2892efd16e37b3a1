/**
 * What every consumer's `drain(timeoutMs)` waits on: the moment its last delivery in flight settles,
 * or the timeout, whichever comes first. The consumer counts its deliveries its own way (a number, a
 * map of claimed entries) and calls {@link IdleWaiters.idle} when the count reaches 0.
 */
export class IdleWaiters {
  private readonly waiters = new Set<() => void>();

  /**
   * Resolves at the next {@link idle}, or after `timeoutMs` (a timer that does not keep the process
   * alive). Call it only while something is in flight.
   */
  whenIdle(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs).unref();
      this.waiters.add(done);
    });
  }

  /** Nothing is in flight any more: every waiter resolves. */
  idle(): void {
    for (const done of [...this.waiters]) done();
  }
}
