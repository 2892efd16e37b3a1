import type { DeadLetter } from '../../backend/broker-backend.interface';
import { readDeadLetter, type StoredMessage } from '../../backend/message-headers';

/**
 * The dead letters of each service on an in-memory broker, kept as AMQP keeps them: the original
 * body and properties with the headers `deadLetterHeaders()` stamped, read back by `readDeadLetter()`.
 */
export class MemoryDeadLetters {
  private readonly lists = new Map<string, StoredMessage[]>();

  add(service: string, stored: StoredMessage): void {
    const list = this.lists.get(service);
    if (list) list.push(stored);
    else this.lists.set(service, [stored]);
  }

  /** The dead letters of `service` from index `from` up to (not including) `to`, oldest first. */
  list(service: string, from = 0, to = Infinity): DeadLetter[] {
    return (this.lists.get(service) ?? [])
      .slice(from, to)
      .map((stored) => readDeadLetter(stored) as DeadLetter);
  }

  /** Removes the dead letters of `service` that `select` picks and returns them, oldest first. */
  take(service: string, select: (letter: DeadLetter) => boolean): DeadLetter[] {
    const kept: StoredMessage[] = [];
    const taken: DeadLetter[] = [];
    for (const stored of this.lists.get(service) ?? []) {
      const letter = readDeadLetter(stored) as DeadLetter;
      if (select(letter)) taken.push(letter);
      else kept.push(stored);
    }
    this.lists.set(service, kept);
    return taken;
  }

  purge(service: string): number {
    const count = this.lists.get(service)?.length ?? 0;
    this.lists.delete(service);
    return count;
  }
}
