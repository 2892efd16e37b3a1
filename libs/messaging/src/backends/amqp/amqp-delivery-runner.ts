/**
 * What happens to one delivery of an `AmqpConsumer` once it arrived on a live channel: a parked
 * message goes back to its parking queue, any other to the handler, and its settlement is carried out
 * in order (the retry copy, dead letter or parked copy published first, then the ack, then the
 * reply). A copy that cannot be published is requeued after a growing pause, never at once. Counts
 * what is in flight, so that `drain()` can wait for it.
 */
import type {
  Delivery,
  DeliveryHandler,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { describeDelivery } from '../../backend/describe-delivery';
import { TimedWaits } from '../../backend/timed-waits';
import type { ConsumeMessage } from 'amqplib';
import { reconnectDelay } from './amqp-backend.options';
import { sanitizeError } from './amqp-connection';
import type { ConsumerChannel } from './amqp-consumer-channel';
import { toDelivery } from './amqp-messages';
import { parkingDelay } from './amqp-parking';
import { AmqpSettler, type AmqpSettlerContext, type CopySettlement } from './amqp-settler';

export class AmqpDeliveryRunner {
  private readonly settler: AmqpSettler;
  /** Deliveries being handled or settled, on every channel of the consumer. */
  private inFlight = 0;
  /** Every `drain()` waiting for `inFlight` to reach 0. */
  private readonly idleWaiters = new TimedWaits();
  /** Settlements in a row whose retry or dead-letter copy could not be published. */
  private copyFailures = 0;
  /** Deliveries held before their requeue; released at once by `stop()`. */
  private readonly holds = new TimedWaits();
  private stopped = false;

  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly handler: DeliveryHandler,
    private readonly ctx: AmqpSettlerContext,
  ) {
    this.settler = new AmqpSettler(spec, ctx);
  }

  /** Handles and settles one delivery, counted in flight on its channel and on the consumer. */
  async run(state: ConsumerChannel, msg: ConsumeMessage): Promise<void> {
    state.inFlight++;
    this.inFlight++;
    try {
      await this.process(state, msg);
    } catch (error) {
      this.ctx.hub.emitError(sanitizeError(error, `settling a delivery of '${this.spec.queue}'`));
    } finally {
      state.inFlight--;
      if (--this.inFlight === 0) this.idleWaiters.wakeAll();
      if (state.retired && state.inFlight === 0) void state.close();
    }
  }

  /** Waits for in-flight deliveries to settle, at most `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.inFlight > 0) await this.idleWaiters.wait(timeoutMs);
  }

  /** The consumer is cancelled or closing: deliveries held before their requeue go back now. */
  stop(): void {
    this.stopped = true;
    this.holds.wakeAll();
  }

  private async process(state: ConsumerChannel, msg: ConsumeMessage): Promise<void> {
    const delivery = this.settler.trustedReplyTo(toDelivery(msg, this.spec.queue));
    const parkMs = parkingDelay(msg.properties.headers);
    if (parkMs > 0) {
      await this.copyThenAck(state, msg, delivery, { action: 'park', delayMs: parkMs });
      return;
    }
    let settlement: Settlement;
    try {
      settlement = await this.handler(delivery);
    } catch (error) {
      // The core's handler never rejects; if it does, hand the message back (the delivery limit of a
      // quorum queue stops an endless loop).
      this.ctx.hub.emitError(
        sanitizeError(
          error,
          `handler of '${this.spec.queue}' rejected ${describeDelivery(delivery)}`,
        ),
      );
      state.settle(msg, 'requeue');
      return;
    }
    // Replies are sent after the ack: a crafted reply address (`amq.rabbitmq.reply-to.` followed by
    // garbage) makes RabbitMQ 3.10 close the whole connection (541); acked first, such a message costs
    // one reconnect instead of a redelivery loop. A reply lost to a crash leaves its caller to time out.
    if (settlement.action === 'ack') {
      state.settle(msg, settlement.reply ? 'ack-now' : 'ack');
      if (settlement.reply) this.settler.sendReply(delivery, settlement.reply);
      return;
    }
    if (settlement.action === 'requeue') {
      state.settle(msg, 'requeue');
      return;
    }
    await this.copyThenAck(state, msg, delivery, settlement);
  }

  /** Publishes a copy (retry, dead letter, parked), then acks and replies; requeues if it failed. */
  private async copyThenAck(
    state: ConsumerChannel,
    msg: ConsumeMessage,
    delivery: Delivery,
    copy: CopySettlement,
  ): Promise<void> {
    try {
      await this.settler.publishCopy(delivery, copy);
      this.copyFailures = 0;
    } catch (error) {
      // Requeued after a growing pause (holding its prefetch slot), never at once: a copy that
      // cannot be written (a broker alarm, a refused delay level) must not spin the handler. On a
      // quorum queue the delivery limit then dead-letters the original.
      const delayMs = reconnectDelay(this.ctx.options.reconnect, this.copyFailures++);
      this.ctx.hub.emitError(
        sanitizeError(
          error,
          `could not ${copy.action} ${describeDelivery(delivery)} of '${this.spec.queue}'; requeueing it in ${delayMs} ms`,
        ),
      );
      await this.hold(delayMs);
      state.settle(msg, 'requeue');
      return;
    }
    const replying = copy.action === 'dead-letter' && copy.reply !== undefined;
    state.settle(msg, replying ? 'ack-now' : 'ack');
    if (copy.action === 'dead-letter' && copy.reply) this.settler.sendReply(delivery, copy.reply);
  }

  private hold(delayMs: number): Promise<void> {
    return this.stopped ? Promise.resolve() : this.holds.wait(delayMs);
  }
}
