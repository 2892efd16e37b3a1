import type { Channel, ChannelModel, GetMessage } from 'amqplib';
import type { BackendEventHub } from '../../backend/backend-events';
import type {
  DeadLetter,
  DeadLetterPage,
  DeadLetterPurge,
  DeadLetterReplay,
} from '../../backend/broker-backend.interface';
import type { DeadLetterStore } from '../../backend/dead-letter-admin';
import { replayHeaders } from '../../backend/message-headers';
import { PublishFailedError } from '../../errors/messaging.errors';
import type { ResolvedAmqpOptions } from './amqp-backend.options';
import { sanitizeError, type AmqpConnectionManager } from './amqp-connection';
import { deadLetterKey, pageByKey, scanByKey, type LetterPass } from './amqp-dead-letter-order';
import { toDeadLetter } from './amqp-messages';
import type { PublishCommand } from './amqp-publish-command';
import { isDelayQueue } from './amqp-delay-levels';
import { deadLetterQueueName, queueExists } from './amqp-topology';

/** What the dead-letter operations need from the backend. */
export interface AmqpDeadLettersContext {
  readonly connection: AmqpConnectionManager;
  readonly options: ResolvedAmqpOptions;
  readonly hub: BackendEventHub;
  publish(command: PublishCommand): Promise<void>;
}

/**
 * What one pass of `scan` holds: it visits letters in order, so it reads the queue once per this many
 * letters (or bytes of bodies; at least one letter).
 */
export const SCAN_BATCH = { letters: 2_000, bytes: 32 * 1024 * 1024 } as const;

/**
 * The dead-letter queue `<service>.dead-letter` as a list. A queue can only be read by taking its
 * messages, so every operation runs alone, under a lock:
 *
 * | step    | how                                                                                     |
 * | ------- | --------------------------------------------------------------------------------------- |
 * | lock    | in this process, one operation per service at a time; across processes, an exclusive   |
 * |         | queue `<service>.dead-letter.lock`, which RabbitMQ lets one connection hold (and drops |
 * |         | with it, should the process die)                                                        |
 * | pass    | `basic.get` without ack on a channel of its own, as many as the queue held at the first |
 * |         | read; closing the channel gives back every message not acked                            |
 * | order   | by each letter's key (`amqp-dead-letter-order.ts`), never by place in the queue, which |
 * |         | a quorum queue does not keep across give-backs                                          |
 * | list    | one pass keeps the page (the first `limit` after the key of the letter before it); a   |
 * |         | page after the first takes a pass before it to find that key, holding keys only        |
 * | scan    | one pass per {@link SCAN_BATCH} of letters, each visiting the next ones in order      |
 * | replay  | the original body and headers, straight to the queue it failed on, as attempt 1; acked |
 * |         | out of the dead-letter queue once the broker confirmed the republish                   |
 * | purge   | `purgeWhere`: one pass acking the letters picked, the others given back at its end;   |
 * | where   | `purge`: the queue purged                                                               |
 *
 * So a listing is oldest first and paging by any size visits every letter once, whatever the queue
 * did with the order; a letter dead-lettered meanwhile sorts after the others. Without
 * `assertTopology` (no right to declare a queue) only the in-process lock applies.
 */
export class AmqpDeadLetters implements DeadLetterStore {
  /** The operation running or last queued, per service: the next one waits for it. */
  private readonly queued = new Map<string, Promise<unknown>>();

  constructor(private readonly ctx: AmqpDeadLettersContext) {}

  /** The dead letters of `service`, oldest first, `page` of them; [] when it has no dead-letter queue. */
  list(service: string, page: DeadLetterPage = {}): Promise<DeadLetter[]> {
    return this.withQueue(service, [], (queue) =>
      pageByKey(queue.letters, page.offset ?? 0, page.limit ?? Infinity),
    );
  }

  /** Replays the dead letter `id`; false when there is none. */
  replay(service: string, id: string): Promise<boolean> {
    return this.withQueue(service, false, async (queue) => {
      let replayed = false;
      await queue.pass(async (msg) => {
        if (toDeadLetter(msg).id !== id) return;
        await this.ctx.publish(this.replayCommand(msg));
        queue.ack(msg);
        replayed = true;
        return false;
      });
      return replayed;
    });
  }

  /**
   * Visits every dead letter of `service`, oldest first (see `DeadLetterAdmin.scan`): a
   * pass per {@link SCAN_BATCH}, each holding the next ones in order.
   */
  scan(service: string, visit: (letter: DeadLetter) => boolean | void): Promise<void> {
    return this.withQueue(service, undefined, (queue) =>
      scanByKey(queue.letters, visit, SCAN_BATCH),
    );
  }

  /** Replays, in one pass, the dead letters `select` picks. */
  replayWhere(service: string, select: (letter: DeadLetter) => boolean): Promise<DeadLetterReplay> {
    return this.withQueue(service, { replayed: [], failed: [] }, async (queue) => {
      const replayed: string[] = [];
      const failed: { id: string; error: string }[] = [];
      await queue.pass(async (msg) => {
        const letter = toDeadLetter(msg);
        if (!select(letter)) return;
        try {
          await this.ctx.publish(this.replayCommand(msg));
          queue.ack(msg);
          replayed.push(letter.id);
        } catch (error) {
          failed.push({ id: letter.id, error: sanitizeError(error).message });
        }
      });
      return { replayed, failed };
    });
  }

  /** Deletes every dead letter of `service`. */
  purge(service: string): Promise<number> {
    return this.withQueue(service, 0, async (queue) => queue.purge());
  }

  /**
   * Deletes, in one pass, the dead letters `select` picks: each is acked, the others are only read,
   * and the end of the pass gives them back with their keys, so they list in the same order. A
   * crash mid-way gives them back too (a channel's unacked messages return when it dies): what was
   * not picked is never lost.
   */
  purgeWhere(service: string, select: (letter: DeadLetter) => boolean): Promise<DeadLetterPurge> {
    return this.withQueue(service, { purged: [] }, async (queue) => {
      const purged: string[] = [];
      await queue.pass((msg) => {
        const letter = toDeadLetter(msg);
        if (!select(letter)) return;
        queue.ack(msg);
        purged.push(letter.id);
      });
      return { purged };
    });
  }

  /**
   * The republish of a dead letter to the queue it failed on. A delay queue (a level, or an old tier) is never that queue: it
   * would dead-letter the message to itself, and RabbitMQ drops such a cycle.
   */
  private replayCommand(msg: GetMessage): PublishCommand {
    const dead = toDeadLetter(msg);
    if (!dead.queue || isDelayQueue(this.ctx.options.exchange, dead.queue)) {
      throw new PublishFailedError(
        `Dead letter ${dead.id} cannot be replayed: it names no work queue to go back to ` +
          `(${dead.queue ? `'${dead.queue}' is a delay queue` : 'no queue recorded'}); it stays in the dead-letter queue. ` +
          'Publish its payload again instead.',
      );
    }
    const p = msg.properties;
    return {
      exchange: '',
      routingKey: dead.queue,
      content: msg.content,
      properties: {
        persistent: true,
        mandatory: true,
        messageId: p.messageId as string | undefined,
        correlationId: p.correlationId as string | undefined,
        contentType: p.contentType as string | undefined,
        contentEncoding: p.contentEncoding as string | undefined,
        timestamp: p.timestamp as number | undefined,
        headers: replayHeaders(dead),
      },
      target: dead.queue,
    };
  }

  /**
   * Runs `work` on the dead-letter queue of `service` with the queue to itself (see the class
   * comment). Resolves with `absent` when the service has no dead-letter queue.
   */
  private withQueue<T>(
    service: string,
    absent: T,
    work: (queue: DeadLetterQueue) => Promise<T>,
  ): Promise<T> {
    const previous = this.queued.get(service) ?? Promise.resolve();
    const run = previous
      .catch(() => undefined)
      .then(async () => {
        const conn = await this.ctx.connection.waitForConnection(this.ctx.options.publishTimeoutMs);
        const queue = deadLetterQueueName(service);
        if (!(await queueExists(conn, queue))) return absent;
        const unlock = await this.lock(conn, queue);
        try {
          return await work(new DeadLetterQueue(() => this.openChannel(conn), queue));
        } finally {
          await unlock();
        }
      });
    this.queued.set(service, run);
    // Both ways, so that a failed operation (its caller has the rejection) leaves no unhandled one.
    const forget = (): void => {
      if (this.queued.get(service) === run) this.queued.delete(service);
    };
    run.then(forget, forget);
    return run;
  }

  /** Holds `<queue>.lock`, an exclusive queue, waiting (with backoff) while another process does. */
  private async lock(conn: ChannelModel, queue: string): Promise<() => Promise<void>> {
    if (!this.ctx.options.assertTopology) return async () => undefined;
    const name = `${queue}.lock`;
    const deadline = Date.now() + this.ctx.options.publishTimeoutMs;
    for (let wait = 20; ; wait = Math.min(wait * 2, 500)) {
      const ch = await this.openChannel(conn);
      try {
        await ch.assertQueue(name, { exclusive: true, durable: false, autoDelete: false });
        return async () => {
          await ch.deleteQueue(name).catch(() => undefined);
          await ch.close().catch(() => undefined);
        };
      } catch (error) {
        // 405 RESOURCE_LOCKED: another connection holds it (and the channel is closed).
        const held = (error as { code?: unknown }).code === 405;
        if (!held || Date.now() + wait > deadline) {
          throw sanitizeError(
            error,
            held
              ? `the dead letters of '${queue}' are in use by another instance; try again`
              : `cannot lock the dead letters of '${queue}' (declaring queue '${name}')`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  private async openChannel(conn: ChannelModel): Promise<Channel> {
    const ch = await conn.createChannel();
    ch.on('error', (error: unknown) => {
      // A held lock refuses the others with a channel error: expected, retried by `lock`.
      if ((error as { code?: unknown }).code === 405) return;
      this.ctx.hub.emitError(sanitizeError(error, 'AMQP dead-letter channel'));
    });
    return ch;
  }
}

/**
 * One dead-letter queue, read in passes. A pass reads, on a channel of its own, as many messages as
 * the queue held at its first read, never more: what is dead-lettered meanwhile (a replayed letter
 * failing again) waits for the next pass, so no pass can chase its own tail. Closing the channel at
 * the end of the pass gives back every message it did not ack.
 */
class DeadLetterQueue {
  /** The channel of the pass under way. */
  private ch?: Channel;

  constructor(
    private readonly open: () => Promise<Channel>,
    private readonly queue: string,
  ) {}

  /** Calls `visit` on each message, held unacknowledged, until the end or until it returns false. */
  async pass(visit: (msg: GetMessage) => boolean | void | Promise<boolean | void>): Promise<void> {
    const ch = await this.open();
    this.ch = ch;
    try {
      for (let left: number | undefined; left !== 0;) {
        const msg = await ch.get(this.queue, { noAck: false });
        if (!msg) return;
        left = left === undefined ? msg.fields.messageCount : left - 1;
        if ((await visit(msg)) === false) return;
      }
    } finally {
      this.ch = undefined;
      await ch.close().catch(() => undefined);
    }
  }

  /** A pass over the letters with their keys, for `pageByKey` and `scanByKey`. */
  readonly letters: LetterPass = (visit) =>
    this.pass((msg) => {
      const letter = toDeadLetter(msg);
      visit(letter, deadLetterKey(letter, msg.properties.headers ?? {}), msg.content.length);
    });

  /** Removes `msg`, read by the pass under way, from the queue. */
  ack(msg: GetMessage): void {
    this.ch?.ack(msg);
  }

  async purge(): Promise<number> {
    const ch = await this.open();
    try {
      return (await ch.purgeQueue(this.queue)).messageCount;
    } finally {
      await ch.close().catch(() => undefined);
    }
  }
}
