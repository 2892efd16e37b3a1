/**
 * `BrokerBackend.deadLetters`, built the same way by every backend: the backend writes what only its
 * broker can do (a {@link DeadLetterStore}), and {@link guardDeadLetters} adds what is the same
 * everywhere:
 *
 * | rule                   | how                                                                        |
 * | ---------------------- | -------------------------------------------------------------------------- |
 * | closed backend         | every operation first calls the backend's open check (`BackendClosedError`) |
 * | `scan` without one     | pages of `list`, {@link SCAN_PAGE_SIZE} at a time                          |
 * | `replayWhere` without  | one `scan` keeping the ids picked, then `replay` of each; after a failure |
 * | one                    | while the backend is not connected, the rest are not attempted             |
 * | `replayAll`            | `replayWhere` picking every letter; each one that stays (its queue is      |
 * |                        | gone) is reported as an `error` event, the count is of those replayed      |
 * | `purge`, `purgeWhere`  | the store's own, always: deleting some letters and keeping the others in   |
 * |                        | place is the broker's to do (no fallback could do it from `list`)          |
 *
 * A fallback pages by position, so a queue that changes meanwhile can make it skip a letter or see
 * one twice; a backend that can read its dead letters in one pass writes `scan` and `replayWhere`.
 */
import type { BackendEventHub } from './backend-events';
import type {
  DeadLetter,
  DeadLetterAdmin,
  DeadLetterPage,
  DeadLetterPurge,
  DeadLetterReplay,
} from './broker-backend.interface';

/** Dead letters read per `list` call by the `scan` fallback: the most held in memory at once. */
export const SCAN_PAGE_SIZE = 200;

/**
 * What a backend writes of its dead-letter administration: `list`, `replay`, `purge` and
 * `purgeWhere` always; `scan` and `replayWhere` where its broker reads a queue in one pass (see the
 * file comment).
 */
export type DeadLetterStore = Pick<DeadLetterAdmin, 'list' | 'replay' | 'purge' | 'purgeWhere'> &
  Partial<Pick<DeadLetterAdmin, 'scan' | 'replayWhere'>>;

/** What the guard needs from the backend that owns the dead letters. */
export interface DeadLetterOwner {
  /** Throws (`BackendClosedError`) once the backend is closed; called first by every operation. */
  assertOpen(): void;
  /** The backend's events: `replayAll` reports on them, the `replayWhere` fallback reads `status`. */
  readonly hub: Pick<BackendEventHub, 'status' | 'emitError'>;
}

/**
 * The {@link DeadLetterAdmin} of a backend: `store`'s operations behind `owner`'s open check, with the
 * fallbacks of the file comment where `store` has no one-pass version.
 *
 * @example
 * readonly deadLetters = guardDeadLetters(new MyDeadLetters(this.client), {
 *   assertOpen: () => this.assertOpen(),
 *   hub: this.events,
 * });
 */
export function guardDeadLetters(store: DeadLetterStore, owner: DeadLetterOwner): DeadLetterAdmin {
  return new GuardedDeadLetters(store, owner);
}

class GuardedDeadLetters implements DeadLetterAdmin {
  constructor(
    private readonly store: DeadLetterStore,
    private readonly owner: DeadLetterOwner,
  ) {}

  async list(service: string, page?: DeadLetterPage): Promise<DeadLetter[]> {
    this.owner.assertOpen();
    return this.store.list(service, page);
  }

  async scan(service: string, visit: (letter: DeadLetter) => boolean | void): Promise<void> {
    this.owner.assertOpen();
    if (this.store.scan) return this.store.scan(service, visit);
    for (let offset = 0; ; offset += SCAN_PAGE_SIZE) {
      const page = await this.store.list(service, { offset, limit: SCAN_PAGE_SIZE });
      for (const letter of page) if (visit(letter) === false) return;
      if (page.length < SCAN_PAGE_SIZE) return;
    }
  }

  async replay(service: string, id: string): Promise<boolean> {
    this.owner.assertOpen();
    return this.store.replay(service, id);
  }

  async replayAll(service: string): Promise<number> {
    const { replayed, failed } = await this.replayWhere(service, () => true);
    for (const { id, error } of failed) {
      this.owner.hub.emitError(
        new Error(`Dead letter ${id} of '${service}' was not replayed and stays: ${error}`),
      );
    }
    return replayed.length;
  }

  async replayWhere(
    service: string,
    select: (letter: DeadLetter) => boolean,
  ): Promise<DeadLetterReplay> {
    this.owner.assertOpen();
    if (this.store.replayWhere) return this.store.replayWhere(service, select);
    const ids: string[] = [];
    await this.scan(service, (letter) => void (select(letter) && ids.push(letter.id)));
    const replayed: string[] = [];
    const failed: { id: string; error: string }[] = [];
    for (const [index, id] of ids.entries()) {
      try {
        if (await this.store.replay(service, id)) replayed.push(id);
        else failed.push({ id, error: 'not found (replayed or purged meanwhile)' });
      } catch (error) {
        failed.push({ id, error: error instanceof Error ? error.message : String(error) });
        if (this.owner.hub.status !== 'connected') {
          // Every other replay would wait out the broker's timeout too: stop, and say so.
          const rest = ids.slice(index + 1);
          failed.push(...rest.map((left) => ({ id: left, error: 'not attempted: no connection' })));
          break;
        }
      }
    }
    return { replayed, failed };
  }

  async purge(service: string): Promise<number> {
    this.owner.assertOpen();
    return this.store.purge(service);
  }

  async purgeWhere(
    service: string,
    select: (letter: DeadLetter) => boolean,
  ): Promise<DeadLetterPurge> {
    this.owner.assertOpen();
    return this.store.purgeWhere(service, select);
  }
}
