/**
 * One lane per key: whoever enters a key's lane while it is taken waits, in the order they came, for
 * the one before to leave. Keys are independent. What an ordered handler uses to take the messages of
 * one `orderingKey` one at a time, in delivery order, and different keys at the same time.
 *
 * | call          | the key's lane is free         | the key's lane is taken                  |
 * | ------------- | ------------------------------ | ---------------------------------------- |
 * | `enter(key)`  | takes it; resolves at once     | queues; resolves when its turn comes     |
 * | `leave(key)`  | (a mistake: nothing to leave)  | hands it to the first waiting, else frees it |
 */
export class KeyLanes {
  /** The waiting turns of each taken lane, first come first; an empty array: taken, nobody waits. */
  private readonly taken = new Map<string, (() => void)[]>();

  /** Resolves once the lane of `key` is the caller's; `leave(key)` hands it on. */
  enter(key: string): Promise<void> {
    const waiting = this.taken.get(key);
    if (!waiting) {
      this.taken.set(key, []);
      return Promise.resolve();
    }
    return new Promise((turn) => waiting.push(turn));
  }

  /** Hands the lane of `key` to the next waiting, or frees it. */
  leave(key: string): void {
    const waiting = this.taken.get(key);
    const next = waiting?.shift();
    if (next) next();
    else this.taken.delete(key);
  }

  /** How many keys have a lane taken now. */
  get size(): number {
    return this.taken.size;
  }
}
