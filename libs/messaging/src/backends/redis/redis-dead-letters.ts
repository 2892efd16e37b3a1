/**
 * Dead letters on Redis: one stream per service (`<prefix>:q:<service>.dead-letter`), read with
 * `XRANGE` in pages of {@link PAGE} entries, so listing and scanning never hold more than a page.
 * A dead letter's id is its entry id: a replay finds it at once, and the Lua replay deletes it and
 * adds the copy to its queue's stream atomically, so two concurrent replays replay it once; a purge
 * of some deletes their entries (`XDEL`), leaving the others as they were.
 */
import type { Redis } from 'ioredis';
import type {
  DeadLetter,
  DeadLetterPage,
  DeadLetterPurge,
  DeadLetterReplay,
} from '../../backend/broker-backend.interface';
import type { DeadLetterStore } from '../../backend/dead-letter-admin';
import { deadLetterQueueName } from '../../backend/queue-names';
import type { ResolvedRedisOptions } from './redis-backend.options';
import { fieldMap, replayFields, timestampOf, toDeadLetter } from './redis-messages';
import { PURGE_IDS_SCRIPT, PURGE_SCRIPT, REPLAY_SCRIPT, runScript } from './redis-scripts';
import type { RedisKeys } from './redis-topology';

/** Entries read per `XRANGE`. */
const PAGE = 100;

const ENTRY_ID = /^\d{1,20}-\d{1,20}$/;

type RawEntry = [Buffer, Buffer[]];

/** Why a replay did not happen. */
class ReplayRefused extends Error {}

export class RedisDeadLetters implements DeadLetterStore {
  constructor(
    private readonly command: () => Redis,
    private readonly keys: RedisKeys,
    private readonly options: ResolvedRedisOptions,
  ) {}

  async list(service: string, page: DeadLetterPage = {}): Promise<DeadLetter[]> {
    let skip = page.offset ?? 0;
    const limit = page.limit ?? Infinity;
    const out: DeadLetter[] = [];
    if (limit <= 0) return out;
    await this.each(service, (letter) => {
      if (skip > 0) {
        skip--;
        return true;
      }
      out.push(letter);
      return out.length < limit;
    });
    return out;
  }

  async scan(service: string, visit: (letter: DeadLetter) => boolean | void): Promise<void> {
    await this.each(service, (letter) => visit(letter) !== false);
  }

  async replay(service: string, id: string): Promise<boolean> {
    if (!ENTRY_ID.test(id)) return false;
    const stream = this.stream(service);
    const [entry] = (await this.command().callBuffer('XRANGE', stream, id, id)) as RawEntry[];
    if (!entry) return false;
    return this.replayEntry(stream, entry);
  }

  async replayWhere(
    service: string,
    select: (letter: DeadLetter) => boolean,
  ): Promise<DeadLetterReplay> {
    const stream = this.stream(service);
    const replayed: string[] = [];
    const failed: Array<{ id: string; error: string }> = [];
    await this.eachEntry(service, async (entry, letter) => {
      if (!select(letter)) return true;
      try {
        if (await this.replayEntry(stream, entry)) replayed.push(letter.id);
      } catch (error) {
        failed.push({
          id: letter.id,
          error: error instanceof Error ? error.message : String(error),
        });
      }
      return true;
    });
    return { replayed, failed };
  }

  async purge(service: string): Promise<number> {
    return Number(await runScript(this.command(), PURGE_SCRIPT, 1, this.stream(service)));
  }

  /**
   * Deletes the dead letters `select` picks, read a page at a time: their ids go, {@link PAGE} at a
   * time, to one script of `XDEL`s, which says which it deleted (one replayed meanwhile is not).
   */
  async purgeWhere(
    service: string,
    select: (letter: DeadLetter) => boolean,
  ): Promise<DeadLetterPurge> {
    const stream = this.stream(service);
    const purged: string[] = [];
    let picked: string[] = [];
    const flush = async (): Promise<void> => {
      if (picked.length === 0) return;
      const ids = picked;
      picked = [];
      purged.push(
        ...((await runScript(this.command(), PURGE_IDS_SCRIPT, 1, stream, ...ids)) as string[]),
      );
    };
    await this.eachEntry(service, async (_entry, letter) => {
      if (select(letter)) picked.push(letter.id);
      if (picked.length >= PAGE) await flush();
      return true;
    });
    await flush();
    return { purged };
  }

  private stream(service: string): string {
    return this.keys.queue(deadLetterQueueName(service));
  }

  private async replayEntry(stream: string, [idBuffer, raw]: RawEntry): Promise<boolean> {
    const id = idBuffer.toString('utf8');
    const fields = fieldMap(raw);
    const letter = toDeadLetter(fields, id);
    if (!letter.queue) {
      throw new ReplayRefused(`dead letter ${id} does not say which queue it failed on`);
    }
    const result = Number(
      await runScript(
        this.command(),
        REPLAY_SCRIPT,
        1,
        this.keys.slotKey,
        this.keys.prefix,
        stream,
        id,
        letter.queue,
        this.options.maxLength,
        ...replayFields(letter, timestampOf(fields)),
      ),
    );
    if (result === -1) {
      throw new ReplayRefused(
        `its queue '${letter.queue}' has no consumer group in Redis (no subscription declared it): start its consumer, then replay`,
      );
    }
    return result === 1;
  }

  private each(service: string, visit: (letter: DeadLetter) => boolean): Promise<void> {
    return this.eachEntry(service, (_entry, letter) => visit(letter));
  }

  /** Visits the entries oldest first, a page at a time, until `visit` returns false. */
  private async eachEntry(
    service: string,
    visit: (entry: RawEntry, letter: DeadLetter) => boolean | Promise<boolean>,
  ): Promise<void> {
    const stream = this.stream(service);
    let start = '-';
    for (;;) {
      const entries = (await this.command().callBuffer(
        'XRANGE',
        stream,
        start,
        '+',
        'COUNT',
        PAGE,
      )) as RawEntry[];
      for (const entry of entries) {
        const id = entry[0].toString('utf8');
        if (!(await visit(entry, toDeadLetter(fieldMap(entry[1]), id)))) return;
      }
      if (entries.length < PAGE) return;
      start = `(${entries[entries.length - 1][0].toString('utf8')}`;
    }
  }
}
