/**
 * A FIFO with O(1) push and shift (an array with a moving head, compacted now and then), so a backlog
 * of many thousand messages does not make each dispatch cost O(backlog) as `Array#shift` does.
 */
export class MessageFifo<T> {
  private items: T[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** Puts `items` back at the front, in their order. */
  unshiftAll(items: readonly T[]): void {
    this.items.splice(this.head, 0, ...items);
  }

  /** The first item, left in place. */
  peek(): T | undefined {
    return this.head < this.items.length ? this.items[this.head] : undefined;
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined as T;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}
