/**
 * Which handlers are paused (`MessagingServer.pause()` / `resume()`, SPEC §5) and the deliveries
 * that wait for them. A delivery of a paused handler keeps its handler slot and waits here,
 * unacknowledged: the broker still holds it, so nothing is lost or dead-lettered and a crash
 * redelivers it. It goes on when its handler is resumed, and back to the broker unhandled when the
 * server closes first. Deliveries already running when a handler is paused finish as usual.
 *
 * | call              | paused afterwards                                   |
 * | ----------------- | --------------------------------------------------- |
 * | `pause()`         | every handler, and those started later              |
 * | `pause(name)`     | that handler too                                    |
 * | `resume()`        | none                                                |
 * | `resume(name)`    | the others as they were                             |
 */
export class PauseGates {
  /** `pause()` was called with no handler since the last `resume()`: handlers not known yet too. */
  private all = false;
  private readonly paused = new Set<string>();
  /** Resumed by name while `all`: the exceptions to it. */
  private readonly resumed = new Set<string>();
  private readonly waiting = new Map<string, Array<(go: boolean) => void>>();
  private closed = false;
  /** Called each time a delivery starts waiting (the testing kit's `settled()` listens). */
  onWait?: () => void;

  /** Whether any handler may be paused (while none is, a delivery costs two field reads here). */
  get active(): boolean {
    return this.all || this.paused.size > 0;
  }

  isPaused(name: string): boolean {
    return this.all ? !this.resumed.has(name) : this.paused.has(name);
  }

  pause(name?: string): void {
    if (name === undefined) {
      this.all = true;
      this.resumed.clear();
    } else {
      this.paused.add(name);
      this.resumed.delete(name);
    }
  }

  resume(name?: string): void {
    if (name === undefined) {
      this.all = false;
      this.paused.clear();
      this.resumed.clear();
      for (const key of [...this.waiting.keys()]) this.open(key, true);
      return;
    }
    this.paused.delete(name);
    if (this.all) this.resumed.add(name);
    this.open(name, true);
  }

  /**
   * Resolves true once `name` is resumed, false once the server closes (the delivery then goes back
   * to the broker unhandled).
   */
  wait(name: string): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    const waiting = new Promise<boolean>((resolve) => {
      const list = this.waiting.get(name);
      if (list) list.push(resolve);
      else this.waiting.set(name, [resolve]);
    });
    this.onWait?.();
    return waiting;
  }

  /** The handlers paused or resumed by name so far. */
  get named(): string[] {
    return [...this.paused, ...this.resumed];
  }

  /** How many deliveries wait for `name`. */
  waitingFor(name: string): number {
    return this.waiting.get(name)?.length ?? 0;
  }

  /** The server closes: every waiting delivery, and any that comes later, goes back unhandled. */
  close(): void {
    this.closed = true;
    for (const key of [...this.waiting.keys()]) this.open(key, false);
  }

  private open(name: string, go: boolean): void {
    const list = this.waiting.get(name);
    this.waiting.delete(name);
    for (const resolve of list ?? []) resolve(go);
  }
}
