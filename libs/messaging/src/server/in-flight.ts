/**
 * The deliveries the server has taken and not settled yet, and the wait for them at shutdown: every
 * `close()` waiting shares one promise that settles when the count next reaches 0.
 */
export class InFlight {
  private count = 0;
  private idle?: { promise: Promise<void>; resolve: () => void };

  get size(): number {
    return this.count;
  }

  /** One more delivery taken. */
  add(): void {
    this.count++;
  }

  /** `count` of them settled (or handed back). */
  done(count = 1): void {
    if ((this.count -= count) === 0 && this.idle) {
      this.idle.resolve();
      this.idle = undefined;
    }
  }

  /** Resolves true once none is left, or false after `timeoutMs`. */
  drained(timeoutMs: number): Promise<boolean> {
    if (this.count === 0) return Promise.resolve(true);
    if (!this.idle) {
      let resolve!: () => void;
      const promise = new Promise<void>((done) => (resolve = done));
      this.idle = { promise, resolve };
    }
    const idle = this.idle.promise;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      void idle.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}
