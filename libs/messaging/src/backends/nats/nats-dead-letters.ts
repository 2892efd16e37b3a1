/**
 * Dead letters on JetStream: one subject per service in the dead-letter stream. Reading goes
 * through an ephemeral consumer (no acks, in memory, gone a minute after its last use even if this
 * process dies) that delivers the service's subject oldest first, a batch at a time; replaying
 * publishes to the queue the message failed on and deletes the dead letter by its sequence; purging
 * some deletes theirs.
 */
import type { JsMsg } from '@nats-io/jetstream';
import type {
  DeadLetter,
  DeadLetterPage,
  DeadLetterPurge,
  DeadLetterReplay,
} from '../../backend/broker-backend.interface';
import type { DeadLetterStore } from '../../backend/dead-letter-admin';
import { replayHeaders } from '../../backend/message-headers';
import type { NatsLink } from './nats-connection';
import { isNotFound } from './nats-declarations';
import { encodeHeaders, toDeadLetter } from './nats-messages';
import type { NatsNames } from './nats-topology';
import type { WireHeaders } from './nats-wire';

/** Most dead letters read from the server in one go. */
const BATCH = 100;

/** What the dead letters need from the backend. */
export interface NatsDeadLettersContext {
  readonly names: NatsNames;
  link(): Promise<NatsLink>;
  /** Publishes to the messages stream and waits for its PubAck. */
  publish(subject: string, body: Uint8Array, headers: WireHeaders, msgID: string): Promise<void>;
  hasQueue(queue: string): Promise<boolean>;
}

/** A dead letter with where it is stored. */
interface Stored {
  readonly letter: DeadLetter;
  readonly seq: number;
}

export class NatsDeadLetters implements DeadLetterStore {
  constructor(private readonly ctx: NatsDeadLettersContext) {}

  async list(service: string, page: DeadLetterPage = {}): Promise<DeadLetter[]> {
    const offset = page.offset ?? 0;
    const limit = page.limit ?? Infinity;
    const out: DeadLetter[] = [];
    if (limit <= 0) return out;
    let index = 0;
    await this.read(service, ({ letter }) => {
      if (index++ >= offset) out.push(letter);
      return out.length < limit;
    });
    return out;
  }

  async scan(service: string, visit: (letter: DeadLetter) => boolean | void): Promise<void> {
    await this.read(service, ({ letter }) => visit(letter) !== false);
  }

  async replay(service: string, id: string): Promise<boolean> {
    let found: Stored | undefined;
    await this.read(service, (stored) => {
      if (stored.letter.id !== id) return true;
      found = stored;
      return false;
    });
    if (!found) return false;
    const error = await this.replayStored(found);
    if (error) throw new Error(`Cannot replay dead letter ${id}: ${error}`);
    return true;
  }

  async replayWhere(
    service: string,
    select: (letter: DeadLetter) => boolean,
  ): Promise<DeadLetterReplay> {
    const replayed: string[] = [];
    const failed: Array<{ id: string; error: string }> = [];
    // Replayed as they are read: one dead letter in hand at a time.
    await this.read(service, async (stored) => {
      if (!select(stored.letter)) return true;
      const error = await this.replayStored(stored).catch((e: unknown) =>
        e instanceof Error ? e.message : String(e),
      );
      if (error) failed.push({ id: stored.letter.id, error });
      else replayed.push(stored.letter.id);
      return true;
    });
    return { replayed, failed };
  }

  async purge(service: string): Promise<number> {
    const { jsm } = await this.ctx.link();
    const response = await jsm.streams.purge(this.ctx.names.deadLetters, {
      filter: this.ctx.names.deadLetterSubject(service),
    });
    return response.purged;
  }

  /**
   * Deletes the dead letters `select` picks, by sequence, as they are read; the others stay where
   * they are. One deleted meanwhile (replayed, purged) is not counted.
   */
  async purgeWhere(
    service: string,
    select: (letter: DeadLetter) => boolean,
  ): Promise<DeadLetterPurge> {
    const { jsm } = await this.ctx.link();
    const purged: string[] = [];
    await this.read(service, async ({ letter, seq }) => {
      if (!select(letter)) return true;
      const deleted = await jsm.streams
        .deleteMessage(this.ctx.names.deadLetters, seq, false)
        .catch((error: unknown) => {
          // 10043 'sequence N not found': deleted meanwhile.
          if (isNotFound(error)) return false;
          throw error;
        });
      if (deleted) purged.push(letter.id);
      return true;
    });
    return { purged };
  }

  /** Publishes the letter to its queue as a first attempt, then deletes it; an error text if not. */
  private async replayStored({ letter, seq }: Stored): Promise<string | undefined> {
    if (!letter.queue) return 'it does not say which queue it failed on';
    if (!(await this.ctx.hasQueue(letter.queue)))
      return `queue '${letter.queue}' has no consumer any more`;
    const { names } = this.ctx;
    const headers = encodeHeaders(replayHeaders(letter), {
      messageId: letter.messageId || undefined,
      correlationId: letter.correlationId,
      contentType: letter.contentType,
      contentEncoding: letter.contentEncoding,
      timestamp: Date.now(),
      attempt: 1,
      topic: letter.topic || undefined,
    });
    // The dead-letter id as message id: a second replay of the same letter is a duplicate.
    await this.ctx.publish(
      names.queueSubject(letter.queue),
      letter.body,
      headers,
      `replay:${letter.id}`,
    );
    const { jsm } = await this.ctx.link();
    await jsm.streams.deleteMessage(names.deadLetters, seq, false).catch(() => false);
    return undefined;
  }

  /**
   * Calls `visit` with each dead letter of `service`, oldest first, until it returns false; holds
   * one batch at a time.
   */
  private async read(
    service: string,
    visit: (stored: Stored) => boolean | Promise<boolean>,
  ): Promise<void> {
    const { js, jsm } = await this.ctx.link();
    const stream = this.ctx.names.deadLetters;
    const info = await jsm.consumers.add(stream, {
      filter_subject: this.ctx.names.deadLetterSubject(service),
      ack_policy: 'none',
      deliver_policy: 'all',
      mem_storage: true,
      inactive_threshold: 60_000 * 1_000_000,
    });
    try {
      const consumer = await js.consumers.get(stream, info.name);
      for (let pending = info.num_pending; pending > 0;) {
        const want = Math.min(pending, BATCH);
        const iter = await consumer.fetch({ max_messages: want, expires: 2_000 });
        let got = 0;
        for await (const msg of iter) {
          got++;
          if (!(await visit(stored(msg)))) {
            iter.stop();
            return;
          }
          // The client may wait for the pull to expire after the last message: it is all here.
          if (got === want) iter.stop();
        }
        if (got === 0) return;
        // Counted here: the server's num_pending of a consumer without acks does not go down.
        pending -= got;
      }
    } finally {
      await jsm.consumers.delete(stream, info.name).catch(() => false);
    }
  }
}

function stored(msg: JsMsg): Stored {
  const at = new Date(Math.floor(msg.info.timestampNanos / 1_000_000));
  return { letter: toDeadLetter(msg.data, msg.headers, msg.seq, at), seq: msg.seq };
}
