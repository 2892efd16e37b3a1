/**
 * Waits that end at their time, or earlier, all at once, when told to. What a backend's loops and
 * consumers wait on:
 *
 * | wait                                         | ends early when                                   |
 * | -------------------------------------------- | ------------------------------------------------- |
 * | `drain(timeoutMs)` of a consumer or a source | its last delivery or request in flight settles    |
 * | a delivery held before its requeue (AMQP)    | its consumer is cancelled or closed               |
 * | a pull loop's backoff pause (NATS)           | the loop is told to stop                          |
 *
 * The one waiting counts its work its own way (a number, a map of claimed entries) and calls
 * {@link TimedWaits.wakeAll} when it is done.
 */
export class TimedWaits {
  private readonly waiting = new Set<() => void>();

  /** `keepsProcessAlive`: whether a wait's timer keeps Node running (by default it does not). */
  constructor(private readonly keepsProcessAlive = false) {}

  /** Resolves after `ms`, or at the next {@link wakeAll}, whichever comes first. */
  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const end = (): void => {
        clearTimeout(timer);
        this.waiting.delete(end);
        resolve();
      };
      const timer = setTimeout(end, ms);
      if (!this.keepsProcessAlive) timer.unref();
      this.waiting.add(end);
    });
  }

  /** Ends every wait under way. */
  wakeAll(): void {
    for (const end of [...this.waiting]) end();
  }
}
