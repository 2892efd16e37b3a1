/**
 * How one consumer carries out the core's settlements on RabbitMQ: the retry copy (straight back to
 * its queue, or through a retry tier), the dead letter (to `<service>.dead-letter`), and the reply
 * (only to an address it may publish to). The consumer acknowledges the original only after these.
 */
import type {
  Delivery,
  OutgoingReply,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { deadLetterHeaders, retryHeaders } from '../../backend/message-headers';
import type { BackendEventHub } from '../../backend/backend-events';
import type { ResolvedAmqpOptions } from './amqp-backend.options';
import { DEAD_LETTER_ORDER_HEADER, DeadLetterClock } from './amqp-dead-letter-order';
import { copyProperties, withoutBrokerHeaders } from './amqp-messages';
import type { PublishCommand } from './amqp-publish-command';
import { DIRECT_REPLY_TO } from './amqp-requester';
import type { AmqpTiers } from './amqp-tiers';
import { deadLetterQueueName } from './amqp-topology';

const DIRECT_REPLY_TO_PREFIX = `${DIRECT_REPLY_TO}.`;

/** What settling needs from the backend. */
export interface AmqpSettlerContext {
  readonly options: ResolvedAmqpOptions;
  readonly hub: BackendEventHub;
  publish(command: PublishCommand): Promise<void>;
  send(command: PublishCommand): boolean;
  readonly tiers: AmqpTiers;
}

export class AmqpSettler {
  /** Stamps the order of this subscription's dead letters (see `amqp-dead-letter-order.ts`). */
  private readonly deadLetterClock = new DeadLetterClock();

  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly ctx: AmqpSettlerContext,
  ) {}

  async publishRetry(
    delivery: Delivery,
    delayMs: number,
    settlement: Extract<Settlement, { action: 'retry' }>,
  ): Promise<void> {
    const properties = copyProperties(
      delivery,
      retryHeaders(delivery, settlement.failure, withoutBrokerHeaders(delivery.headers)),
    );
    // Straight back to the failing queue by name (default exchange), or through a retry tier.
    const direct: PublishCommand = {
      exchange: '',
      routingKey: this.spec.queue,
      content: delivery.body,
      properties,
      target: this.spec.queue,
    };
    if (delayMs > 0) await this.ctx.tiers.publish('retry', delayMs, direct);
    else await this.ctx.publish(direct);
  }

  async publishDeadLetter(
    delivery: Delivery,
    settlement: Extract<Settlement, { action: 'dead-letter' }>,
  ): Promise<void> {
    const dlq = deadLetterQueueName(this.spec.service);
    const headers = deadLetterHeaders(
      delivery,
      settlement.failure,
      withoutBrokerHeaders(delivery.headers),
    );
    headers[DEAD_LETTER_ORDER_HEADER] = this.deadLetterClock.next();
    await this.ctx.publish({
      exchange: '',
      routingKey: dlq,
      content: delivery.body,
      properties: copyProperties(delivery, headers),
      target: dlq,
    });
  }

  /**
   * `delivery`, or as an event when its reply address is neither a direct reply-to address nor one of
   * `replyToQueues`: replying publishes with this service's permissions, wherever the sender asked.
   */
  trustedReplyTo(delivery: Delivery): Delivery {
    const { replyTo } = delivery;
    if (
      replyTo === undefined ||
      replyTo.startsWith(DIRECT_REPLY_TO_PREFIX) ||
      this.ctx.options.replyToQueues.includes(replyTo)
    ) {
      return delivery;
    }
    this.ctx.hub.emitError(
      new Error(
        `Message ${delivery.messageId} on '${this.spec.queue}' asks for a reply to queue '${replyTo}': ` +
          'handled as an event, unanswered. Only direct reply-to addresses are answered; list the queue ' +
          'in AmqpBackend replyToQueues to allow it.',
      ),
    );
    return { ...delivery, replyTo: undefined };
  }

  /**
   * Sends a reply without waiting for its confirm (see {@link AmqpPublisher.send}); a failure is
   * reported and does not undo the handled message: its caller times out.
   */
  sendReply(delivery: Delivery, reply: OutgoingReply): void {
    if (!delivery.replyTo) return;
    const sent = this.ctx.send({
      exchange: '',
      routingKey: delivery.replyTo,
      content: reply.body,
      properties: {
        correlationId: delivery.correlationId,
        contentType: reply.contentType,
        headers: reply.headers,
      },
      target: delivery.replyTo,
    });
    if (!sent) {
      this.ctx.hub.emitError(
        new Error(
          `could not send the reply to a request on '${this.spec.queue}': no channel to RabbitMQ`,
        ),
      );
    }
  }
}
