import type { Logger } from '@nestjs/common';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { AckBatcher } from './amqp-acks';
import { sanitizeError, type AmqpConnectionManager } from './amqp-connection';

/** How a delivery is settled on its channel: acked with the next batch, acked now, handed back. */
export type ChannelSettlement = 'ack' | 'ack-now' | 'requeue';

/**
 * One channel of an `AmqpConsumer`, carrying its consumers (the route's queue, and its volatile
 * requests: one sequence of delivery tags, one ack batcher). Acks go only to the channel that
 * delivered, and only while it lives on the current connection: after a reconnect the broker
 * redelivers instead.
 *
 * The channel of an exclusive subscription (a single active consumer) keeps its queue's consumer when
 * it retires: a basic.cancel would make the next consumer active at once, ahead of what this one
 * still holds. It keeps what it gives back (a requeue, a delivery that arrives meanwhile) unacked
 * instead, and closing it once its in-flight deliveries settled returns them all together, in queue
 * order, to the consumer that RabbitMQ then makes active.
 */
export class ConsumerChannel {
  alive = true;
  /** The consumer of the route's queue. */
  consumerTag?: string;
  /** The consumer of the route's volatile requests, on the same channel. */
  requestTag?: string;
  /** Deliveries of this channel being handled or settled. */
  inFlight = 0;
  /** No longer consuming: closed once its in-flight deliveries are settled. */
  retired = false;
  readonly acks: AckBatcher;

  constructor(
    readonly ch: Channel,
    readonly conn: ChannelModel,
    private readonly queue: string,
    private readonly connection: AmqpConnectionManager,
    private readonly logger: Logger,
    private readonly exclusive = false,
  ) {
    this.acks = new AckBatcher({
      ack: (msg, allUpTo) => this.onLive('ack', () => ch.ack(msg, allUpTo)),
      nack: (msg, allUpTo, requeue) => this.onLive('requeue', () => ch.nack(msg, allUpTo, requeue)),
    });
  }

  /** Acks (batched, or at once before a reply) or requeues `msg`, while the channel lives. */
  settle(msg: ConsumeMessage, how: ChannelSettlement): void {
    if (!this.isLive(how)) return;
    if (how === 'requeue' && this.retired && this.exclusive) return; // given back by close()
    const tag = msg.fields.deliveryTag;
    if (how === 'ack') this.acks.ack(tag, msg);
    else if (how === 'ack-now') this.acks.ackNow(tag, msg);
    else this.acks.requeue(tag, msg);
  }

  /** Stops its consumers, and closes it now or once its in-flight deliveries are settled. */
  async retire(): Promise<void> {
    this.retired = true;
    if (!this.alive) return;
    if (this.consumerTag && !this.exclusive)
      await this.ch.cancel(this.consumerTag).catch(() => undefined);
    if (this.requestTag) await this.ch.cancel(this.requestTag).catch(() => undefined);
    if (this.inFlight === 0) await this.close();
  }

  /** Sends the acks still owed, then closes the channel. */
  async close(): Promise<void> {
    this.acks.flush();
    await this.ch.close().catch(() => undefined);
  }

  /** Runs `send` (an ack or nack frame) if the channel is still live. */
  private onLive(what: string, send: () => void): void {
    if (!this.isLive(what)) return;
    try {
      send();
    } catch (error) {
      this.logger.debug(
        `Could not ${what} on the channel of '${this.queue}': ${sanitizeError(error).message}`,
      );
    }
  }

  private isLive(what: string): boolean {
    if (this.alive && this.connection.current === this.conn) return true;
    this.logger.debug(
      `Dropped the ${what} of a delivery of '${this.queue}': its channel is gone (it will be redelivered)`,
    );
    return false;
  }
}
