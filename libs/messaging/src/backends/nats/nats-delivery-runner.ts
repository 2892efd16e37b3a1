/**
 * What happens to one delivery of a route once it has a handler slot: the delivery limit, the
 * handler, and its settlement carried out in order (the reply, the retry copy or the dead letter
 * stored first, then the ack). Acks are plain, sent with the others of the same turn of the event
 * loop, unless `confirmAcks` asks for the server's confirmation of each.
 */
import type {
  Delivery,
  DeliveryHandler,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { decideDeliveryLimit } from '../../backend/delivery-limit';
import { describeDelivery } from '../../backend/describe-delivery';
import { describe } from './nats-connection';
import { toDelivery } from './nats-messages';
import type { PulledMessage } from './nats-pulled-message';
import type { NatsSettler, NatsSettlerContext } from './nats-settler';

/** Most deliveries handed back unsettled whose count a runner remembers (oldest forgotten first). */
export const HANDED_BACK_MAX = 10_000;

export class NatsDeliveryRunner {
  /** Plain acks of this turn of the event loop, sent together. */
  private acks: PulledMessage[] = [];
  /**
   * Delivery counts of this route's messages handed back unsettled (a nak), by stream sequence. A
   * server that delivered one into a pull whose inbox was gone (a renewed pull) counts it from 1
   * again (nats-server 2.9): without this, a message past `deliveryLimit` would reach its handler
   * again. Empty in normal operation.
   */
  private readonly handedBack = new Map<number, number>();
  /** Copies (retry, dead letter) that failed in a row: the backoff of the next redelivery. */
  private copyFailures = 0;

  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly handler: DeliveryHandler,
    private readonly ctx: NatsSettlerContext,
    private readonly settler: NatsSettler,
    /** Takes a delivery to hand back later instead of a nak now, when it says so (`NatsConsumer`). */
    private readonly keep: (msg: PulledMessage) => boolean = () => false,
  ) {}

  /**
   * Runs the handler on `msg` and carries out its settlement; resolves once it is settled (acked,
   * or handed back when it could not be).
   */
  async run(msg: PulledMessage): Promise<void> {
    const deliveries = this.deliveriesOf(msg);
    const delivery = this.settler.trustedReplyTo(toDelivery(msg, this.spec.queue, this.ctx.names));
    const limit = this.ctx.options.deliveryLimit;
    const overLimit = decideDeliveryLimit({ deliveries, limit, now: new Date() });
    if (overLimit) {
      // Delivered that often without being settled: it crashes its consumers. Park it.
      await this.settleCopy(msg, delivery, overLimit, deliveries);
      return;
    }
    let settlement: Settlement;
    try {
      settlement = await this.handler(delivery);
    } catch (error) {
      this.ctx.hub.emitError(
        new Error(
          `handler of '${this.spec.queue}' rejected ${describeDelivery(delivery)}: ${describe(error)}`,
        ),
      );
      this.handBack(msg, deliveries, 1_000);
      return;
    }
    if (settlement.action === 'ack') {
      this.settled(msg);
      await this.ack(msg);
      if (settlement.reply) this.settler.sendReply(delivery, settlement.reply);
      return;
    }
    if (settlement.action === 'requeue') {
      this.handBack(msg, deliveries);
      return;
    }
    await this.settleCopy(msg, delivery, settlement, deliveries);
  }

  /**
   * How many times `msg` was delivered: the server's count, or one more than this runner last saw
   * when the server counts it again from below (then it is marked redelivered too).
   */
  private deliveriesOf(msg: PulledMessage): number {
    const count = msg.deliveryCount;
    if (this.handedBack.size === 0) return count;
    const before = this.handedBack.get(msg.seq);
    if (before === undefined || count > before) return count;
    msg.rolledBack = true;
    return before + 1;
  }

  /** Naks `msg` (redelivered after `delayMs`, or at once) and remembers its count. */
  private handBack(msg: PulledMessage, deliveries: number, delayMs?: number): void {
    this.handedBack.delete(msg.seq); // re-inserted last: the oldest are forgotten first
    this.handedBack.set(msg.seq, deliveries);
    if (this.handedBack.size > HANDED_BACK_MAX)
      this.handedBack.delete(this.handedBack.keys().next().value as number);
    if (delayMs === undefined && this.keep(msg)) return;
    quietly(() => (delayMs === undefined ? msg.nak() : msg.nak(delayMs)));
  }

  private settled(msg: PulledMessage): void {
    if (this.handedBack.size > 0) this.handedBack.delete(msg.seq);
  }

  /** Writes the retry copy or dead letter, then acks; requeues after a pause when it cannot. */
  private async settleCopy(
    msg: PulledMessage,
    delivery: Delivery,
    settlement: Extract<Settlement, { action: 'retry' | 'dead-letter' }>,
    deliveries: number,
  ): Promise<void> {
    try {
      // Message ids from the route and the stored message's sequence: the copy of a redelivery (a
      // crash between the copy and the ack) is a duplicate the stream drops; a replayed message is a
      // new one. The route is part of it: with fan-out, several routes fail the same stored message,
      // and each one's copy must be stored.
      const origin = `${this.ctx.names.messages}:${this.spec.queue}:${msg.seq}`;
      if (settlement.action === 'retry')
        await this.settler.publishRetry(delivery, settlement, origin);
      else await this.settler.publishDeadLetter(delivery, settlement, origin);
      this.copyFailures = 0;
    } catch (error) {
      const delayMs = Math.min(500 * 2 ** this.copyFailures++, 30_000);
      this.ctx.hub.emitError(
        new Error(
          `could not ${settlement.action} ${describeDelivery(delivery)} of '${this.spec.queue}': ` +
            `${describe(error)}; redelivering it in ${delayMs} ms`,
        ),
      );
      this.handBack(msg, deliveries, delayMs);
      return;
    }
    this.settled(msg);
    await this.ack(msg);
    if (settlement.action === 'dead-letter' && settlement.reply)
      this.settler.sendReply(delivery, settlement.reply);
  }

  /**
   * Acknowledges a settled delivery (its copies, if any, are stored already). A plain ack is sent
   * with the others of this turn of the event loop; a lost one is a redelivery after the ack wait.
   */
  private async ack(msg: PulledMessage): Promise<void> {
    if (!this.ctx.options.confirmAcks) {
      this.ackLater(msg);
      return;
    }
    try {
      // Closed meanwhile (close timed out on this handler): the server redelivers it instead.
      const { nc } = await this.ctx.link();
      await msg.ackConfirmed(nc, this.ctx.options.publishTimeoutMs);
    } catch (error) {
      this.ctx.logger.debug(
        `The ack of a delivery of '${this.spec.queue}' was not confirmed (${describe(error)}); it may be redelivered`,
      );
    }
  }

  /** Acks `msg` with the others of this turn of the event loop. */
  ackLater(msg: PulledMessage): void {
    if (this.acks.push(msg) === 1) setImmediate(() => this.flushAcks());
  }

  /** Sends the acks of this turn in one write. */
  flushAcks(): void {
    const acks = this.acks;
    if (acks.length === 0) return;
    this.acks = [];
    for (const msg of acks) quietly(() => msg.ack());
  }
}

/** Runs an ack, nak or keep-alive; on a closed connection it cannot be sent, and the server redelivers. */
export function quietly(send: () => void): void {
  try {
    send();
  } catch {
    // The connection is gone: the delivery comes back after the ack wait.
  }
}
