import type { Channel, ChannelModel, GetMessage } from 'amqplib';
import type { BackendEventHub } from '../../backend/backend-events';
import type { DeadLetter } from '../../backend/broker-backend.interface';
import { replayHeaders } from '../../backend/message-headers';
import type { ResolvedAmqpOptions } from './amqp-backend.options';
import { sanitizeError, type AmqpConnectionManager } from './amqp-connection';
import { toDeadLetter } from './amqp-messages';
import type { PublishCommand } from './amqp-publish-command';
import { deadLetterQueueName, isTierQueue, queueExists } from './amqp-topology';
import { PublishFailedError } from '../../errors/messaging.errors';

/** What the dead-letter operations need from the backend. */
export interface AmqpDeadLettersContext {
  readonly connection: AmqpConnectionManager;
  readonly options: ResolvedAmqpOptions;
  readonly hub: BackendEventHub;
  publish(command: PublishCommand): Promise<void>;
}

/**
 * The dead-letter queue `<service>.dead-letter` as a list. Reading takes every message with
 * `basic.get` (no ack) on a dedicated channel, then closes that channel: the broker puts the messages
 * back in their order (verified for quorum and classic queues), so listing neither loses nor reorders
 * them. A replay republishes the original body and headers straight to the queue the message failed
 * on, as attempt 1, waits for the confirm, and only then acks it out of the dead-letter queue.
 *
 * Two listings at the same moment see each other's held messages as absent.
 */
export class AmqpDeadLetters {
  constructor(private readonly ctx: AmqpDeadLettersContext) {}

  /** Every dead letter of `service`, oldest first; [] when its dead-letter queue does not exist. */
  list(service: string): Promise<DeadLetter[]> {
    return this.withMessages(service, async (_ch, messages) =>
      messages.map((m) => toDeadLetter(m)),
    );
  }

  /** Replays the dead letter `id`; false when there is none. */
  replay(service: string, id: string): Promise<boolean> {
    return this.withMessages(service, async (ch, messages) => {
      const found = messages.find((m) => toDeadLetter(m).id === id);
      if (!found) return false;
      await this.ctx.publish(this.replayCommand(found));
      ch.ack(found);
      return true;
    });
  }

  /** Replays every dead letter; one that cannot be replayed (its queue is gone) stays and is reported. */
  replayAll(service: string): Promise<number> {
    return this.withMessages(service, async (ch, messages) => {
      const results = await Promise.allSettled(
        messages.map(async (m) => this.ctx.publish(this.replayCommand(m))),
      );
      let replayed = 0;
      results.forEach((result, i) => {
        if (result.status === 'fulfilled') {
          ch.ack(messages[i]);
          replayed++;
        } else {
          this.ctx.hub.emitError(
            sanitizeError(result.reason, `replaying a dead letter of '${service}'`),
          );
        }
      });
      return replayed;
    });
  }

  /** Deletes every dead letter of `service`. */
  async purge(service: string): Promise<number> {
    const conn = await this.ctx.connection.waitForConnection(this.ctx.options.publishTimeoutMs);
    const queue = deadLetterQueueName(service);
    if (!(await queueExists(conn, queue))) return 0;
    const ch = await this.openChannel(conn);
    try {
      const { messageCount } = await ch.purgeQueue(queue);
      return messageCount;
    } finally {
      await ch.close().catch(() => undefined);
    }
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

  /** Holds every message of the queue unacked on a dedicated channel while `work` runs, then closes it. */
  private async withMessages<T>(
    service: string,
    work: (ch: Channel, messages: GetMessage[]) => Promise<T>,
  ): Promise<T> {
    const conn = await this.ctx.connection.waitForConnection(this.ctx.options.publishTimeoutMs);
    const queue = deadLetterQueueName(service);
    const ch = await this.openChannel(conn);
    try {
      if (!(await queueExists(conn, queue))) return await work(ch, []);
      const messages: GetMessage[] = [];
      for (;;) {
        const msg = await ch.get(queue, { noAck: false });
        if (!msg) break;
        messages.push(msg);
      }
      return await work(ch, messages);
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  private async openChannel(conn: ChannelModel): Promise<Channel> {
    const ch = await conn.createChannel();
    ch.on('error', (error: unknown) =>
      this.ctx.hub.emitError(sanitizeError(error, 'AMQP dead-letter channel')),
    );
    return ch;
  }
}
