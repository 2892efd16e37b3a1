/**
 * Logs the errors a backend reports (a broker it cannot reach, a consumer it could not re-subscribe,
 * a retry copy it could not publish) whether or not the application listens to them: a broker that is
 * down shows in the log at once, not after `connectTimeoutMs`. At most `burst` lines per `windowMs`,
 * so a broker in trouble does not flood the log; what was held back is counted in one line when the
 * window ends.
 */
export class BackendErrorLog {
  private windowStart = Number.NEGATIVE_INFINITY;
  private shown = 0;
  private held = 0;
  private summary?: { cancel(): void };

  constructor(
    private readonly write: (line: string) => void,
    private readonly now: () => number = Date.now,
    private readonly later: (run: () => void, ms: number) => { cancel(): void } = unrefTimer,
    private readonly burst = 10,
    private readonly windowMs = 10_000,
  ) {}

  report(error: Error): void {
    const at = this.now();
    if (at - this.windowStart >= this.windowMs) {
      this.flush();
      this.windowStart = at;
    }
    if (this.shown < this.burst) {
      this.shown++;
      this.write(error.message);
      return;
    }
    this.held++;
    this.summary ??= this.later(() => this.flush(), this.windowStart + this.windowMs - at);
  }

  /** Writes the count of what was held back, and starts a new window. */
  flush(): void {
    this.summary?.cancel();
    this.summary = undefined;
    if (this.held > 0) {
      this.write(
        `${this.held} more backend error(s) in ${this.windowMs / 1000} s not logged (at most ${this.burst} are)`,
      );
    }
    this.shown = 0;
    this.held = 0;
    this.windowStart = Number.NEGATIVE_INFINITY;
  }
}

function unrefTimer(run: () => void, ms: number): { cancel(): void } {
  const timer = setTimeout(run, ms).unref();
  return { cancel: () => clearTimeout(timer) };
}
