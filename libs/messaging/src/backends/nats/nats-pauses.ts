/**
 * The backoff pauses of a pull loop (a route's pulls, the delayer): each waits its time, or less
 * once {@link wakeAll} ends them, so a loop that is told to stop does not sleep on (and keep a closed
 * process alive) for up to its longest backoff.
 */
export class NatsPauses {
  private readonly sleepers = new Set<() => void>();

  /** Resolves after `ms`, or at once when {@link wakeAll} is called meanwhile. */
  pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  /** Ends every pause under way. */
  wakeAll(): void {
    for (const wake of [...this.sleepers]) wake();
  }
}
