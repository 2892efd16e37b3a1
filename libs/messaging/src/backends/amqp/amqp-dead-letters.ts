import type { Channel, ChannelModel, GetMessage } from 'amqplib';
import type { BackendEventHub } from '../../backend/backend-events';
import type {
  DeadLetter,
  DeadLetterPage,
  DeadLetterReplay,
} from '../../backend/broker-backend.interface';
import { replayHeaders } from '../../backend/message-headers';
import { PublishFailedError } from '../../errors/messaging.errors';
import type { ResolvedAmqpOptions } from './amqp-backend.options';
import { sanitizeError, type AmqpConnectionManager } from './amqp-connection';
import { toDeadLetter } from './amqp-messages';
import type { PublishCommand } from './amqp-publish-command';
import { deadLetterQueueName, isTierQueue, queueExists } from './amqp-topology';

/** What the dead-letter operations need from the backend. */
export interface AmqpDeadLettersContext {
  readonly connection: AmqpConnectionManager;
  readonly options: ResolvedAmqpOptions;
  readonly hub: BackendEventHub;
  publish(command: PublishCommand): Promise<void>;
}

/**
 * The dead-letter queue `<service>.dead-letter` as a list. A queue can only be read by taking its
 * messages, so every operation runs alone, under a lock:
 *
 * | step    | how                                                                                     |
 * | ------- | --------------------------------------------------------------------------------------- |
 * | lock    | in this process, one operation per service at a time; across processes, an exclusive   |
 * |         | queue `<service>.dead-letter.lock`, which RabbitMQ lets one connection hold (and drops |
 * |         | with it, should the process die)                                                        |
 * | read    | `basic.get` without ack on a channel of its own, as many as the queue held at the first |
 * |         | read; only the page asked for (or the letter to replay) is kept in memory                |
 * | replay  | the original body and headers, straight to the queue it failed on, as attempt 1; acked |
 * |         | out of the dead-letter queue once the broker confirmed the republish                   |
 * | unlock  | every message read and not acked is given back, one by one in the order read, then the |
 * |         | channel closes (a close alone gives them back in no particular order)                   |
 *
 * So two listings, or a listing and a replay, never see each other's messages as missing, and the
 * queue keeps its order: every operation takes every message and gives them all back in order, so
 * none moves relative to another (a quorum queue puts what is given back behind what was not taken,
 * and counts the return in `x-delivery-count`, which listings do not show; a letter dead-lettered
 * during a listing may land before the ones given back). Only delivery tags are kept for that. Without
 * `assertTopology` (no right to declare a queue) only the in-process lock applies.
 */
export class AmqpDeadLetters {
  /** The operation running or last queued, per service: the next one waits for it. */
  private readonly queued = new Map<string, Promise<unknown>>();

  constructor(private readonly ctx: AmqpDeadLettersContext) {}

  /** The dead letters of `service`, oldest first, `page` of them; [] when it has no dead-letter queue. */
  list(service: string, page: DeadLetterPage = {}): Promise<DeadLetter[]> {
    const from = page.offset ?? 0;
    const to = from + (page.limit ?? Infinity);
    return this.withQueue(service, [], async (queue) => {
      const letters: DeadLetter[] = [];
      for (let index = 0; ; index++) {
        const msg = await queue.next();
        if (!msg) return letters;
        if (index >= from && index < to) letters.push(toDeadLetter(msg));
      }
    });
  }

  /** Replays the dead letter `id`; false when there is none. */
  replay(service: string, id: string): Promise<boolean> {
    return this.withQueue(service, false, async (queue) => {
      let replayed = false;
      // To the end even once found: a quorum queue puts what is given back behind what was never
      // taken, so only taking every message keeps them in order.
      for (let msg = await queue.next(); msg; msg = await queue.next()) {
        if (!replayed && toDeadLetter(msg).id === id) {
          await this.ctx.publish(this.replayCommand(msg));
          queue.ack(msg);
          replayed = true;
        }
      }
      return replayed;
    });
  }

  /** Replays every dead letter; one that cannot be replayed (its queue is gone) stays and is reported. */
  replayAll(service: string): Promise<number> {
    return this.withQueue(service, 0, async (queue) => {
      let replayed = 0;
      for (;;) {
        const msg = await queue.next();
        if (!msg) return replayed;
        try {
          await this.ctx.publish(this.replayCommand(msg));
          queue.ack(msg);
          replayed++;
        } catch (error) {
          this.ctx.hub.emitError(sanitizeError(error, `replaying a dead letter of '${service}'`));
        }
      }
    });
  }

  /** Visits every dead letter of `service` in one pass (see `BrokerBackend.scanDeadLetters`). */
  scan(service: string, visit: (letter: DeadLetter) => boolean | void): Promise<void> {
    return this.withQueue(service, undefined, async (queue) => {
      let visiting = true;
      // To the end even when `visit` has seen enough: only taking every message keeps the order.
      for (let msg = await queue.next(); msg; msg = await queue.next()) {
        if (visiting && visit(toDeadLetter(msg)) === false) visiting = false;
      }
    });
  }

  /** Replays, in one pass, the dead letters `select` picks. */
  replayWhere(service: string, select: (letter: DeadLetter) => boolean): Promise<DeadLetterReplay> {
    return this.withQueue(service, { replayed: [], failed: [] }, async (queue) => {
      const replayed: string[] = [];
      const failed: { id: string; error: string }[] = [];
      for (let msg = await queue.next(); msg; msg = await queue.next()) {
        const letter = toDeadLetter(msg);
        if (!select(letter)) continue;
        try {
          await this.ctx.publish(this.replayCommand(msg));
          queue.ack(msg);
          replayed.push(letter.id);
        } catch (error) {
          failed.push({ id: letter.id, error: sanitizeError(error).message });
        }
      }
      return { replayed, failed };
    });
  }

  /** Deletes every dead letter of `service`. */
  purge(service: string): Promise<number> {
    return this.withQueue(service, 0, async (queue) => queue.purge());
  }

  /**
   * The republish of a dead letter to the queue it failed on. A tier queue is never that queue: it
   * would dead-letter the message to itself, and RabbitMQ drops such a cycle.
   */
  private replayCommand(msg: GetMessage): PublishCommand {
    const dead = toDeadLetter(msg);
    if (!dead.queue || isTierQueue(this.ctx.options.exchange, dead.queue)) {
      throw new PublishFailedError(
        `Dead letter ${dead.id} cannot be replayed: it names no work queue to go back to ` +
          `(${dead.queue ? `'${dead.queue}' is a delay tier` : 'no queue recorded'}); it stays in the dead-letter queue. ` +
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
   * Runs `work` on a channel of its own with the dead-letter queue to itself (see the class
   * comment), then closes the channel, which gives back what it read and did not ack. Resolves with
   * `absent` when the service has no dead-letter queue.
   */
  private withQueue<T>(
    service: string,
    absent: T,
    work: (queue: DeadLetterQueueReader) => Promise<T>,
  ): Promise<T> {
    const previous = this.queued.get(service) ?? Promise.resolve();
    const run = previous
      .catch(() => undefined)
      .then(async () => {
        const conn = await this.ctx.connection.waitForConnection(this.ctx.options.publishTimeoutMs);
        const queue = deadLetterQueueName(service);
        if (!(await queueExists(conn, queue))) return absent;
        const unlock = await this.lock(conn, queue);
        let reader: DeadLetterQueueReader | undefined;
        try {
          reader = new DeadLetterQueueReader(await this.openChannel(conn), queue);
          return await work(reader);
        } finally {
          try {
            await reader?.close();
          } finally {
            await unlock();
          }
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
 * Reads one dead-letter queue on its own channel, remembering the delivery tags to give back. It
 * reads as many messages as the queue held at its first read, never more: what is dead-lettered
 * meanwhile (a replayed letter failing again) is not read, so no operation can chase its own tail.
 */
class DeadLetterQueueReader {
  private readonly taken = new Set<number>();
  /** Messages still to read; known from the first read. */
  private left?: number;

  constructor(
    private readonly ch: Channel,
    private readonly queue: string,
  ) {}

  /** The next message, held unacknowledged; false at the end of what the queue held. */
  async next(): Promise<GetMessage | false> {
    if (this.left === 0) return false;
    const msg = await this.ch.get(this.queue, { noAck: false });
    if (!msg) return false;
    this.left = this.left === undefined ? msg.fields.messageCount : this.left - 1;
    this.taken.add(msg.fields.deliveryTag);
    return msg;
  }

  /** Removes `msg` from the queue. */
  ack(msg: GetMessage): void {
    this.taken.delete(msg.fields.deliveryTag);
    this.ch.ack(msg);
  }

  async purge(): Promise<number> {
    return (await this.ch.purgeQueue(this.queue)).messageCount;
  }

  /** Gives back what was read and not acknowledged, in the order read, and closes the channel. */
  async close(): Promise<void> {
    try {
      for (const deliveryTag of this.taken) {
        this.ch.nack({ fields: { deliveryTag } } as GetMessage, false, true);
      }
    } catch {
      // The channel is gone (a channel error): the broker gave everything back already.
    } finally {
      await this.ch.close().catch(() => undefined);
    }
  }
}
