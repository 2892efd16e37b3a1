/**
 * How one consumer carries out the core's settlements on RabbitMQ: the retry copy (straight back to
 * its queue, or through the delay levels), the parked copy of a delayed publish not yet due, the dead letter (to `<service>.dead-letter`), and the reply
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
import { describeDelivery } from '../../backend/describe-delivery';
import type { ResolvedAmqpOptions } from './amqp-backend.options';
import { DEAD_LETTER_ORDER_HEADER, DeadLetterClock } from './amqp-dead-letter-order';
import {
  DROPPED_HEADERS,
  fieldTableBytes,
  fitHeaders,
  listDropped,
  MAX_HEADER_TABLE_BYTES,
} from './amqp-header-budget';
import { copyProperties, withoutBrokerHeaders } from './amqp-messages';
import type { PublishCommand } from './amqp-publish-command';
import { DIRECT_REPLY_TO } from './amqp-requester';
import type { AmqpDelays } from './amqp-delays';
import { parkedHeaders } from './amqp-parking';
import { deadLetterQueueName } from './amqp-topology';

const DIRECT_REPLY_TO_PREFIX = `${DIRECT_REPLY_TO}.`;

/** What settling needs from the backend. */
export interface AmqpSettlerContext {
  readonly options: ResolvedAmqpOptions;
  readonly hub: BackendEventHub;
  publish(command: PublishCommand): Promise<void>;
  send(command: PublishCommand): boolean;
  readonly delays: AmqpDelays;
}

/** A copy published before the original is acknowledged: a retry, a dead letter, or a parked copy. */
export type CopySettlement =
  | Extract<Settlement, { action: 'retry' | 'dead-letter' }>
  | { readonly action: 'park'; readonly delayMs: number };

export class AmqpSettler {
  /** Stamps the order of this subscription's dead letters (see `amqp-dead-letter-order.ts`). */
  private readonly deadLetterClock = new DeadLetterClock();

  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly ctx: AmqpSettlerContext,
  ) {}

  /** Publishes the copy `copy` says of `delivery`. */
  publishCopy(delivery: Delivery, copy: CopySettlement): Promise<void> {
    if (copy.action === 'retry') return this.publishRetry(delivery, copy.delayMs, copy);
    if (copy.action === 'park') return this.park(delivery, copy.delayMs);
    return this.publishDeadLetter(delivery, copy);
  }

  /**
   * Publishes the retry copy of `delivery`. One whose headers would not fit (see
   * `amqp-header-budget.ts`) is dead-lettered at once instead: requeued, it would run its handler
   * again and again; retried without some headers, on a message other than the one sent.
   */
  async publishRetry(
    delivery: Delivery,
    delayMs: number,
    settlement: Extract<Settlement, { action: 'retry' }>,
  ): Promise<void> {
    const headers = retryHeaders(
      delivery,
      settlement.failure,
      withoutBrokerHeaders(delivery.headers),
    );
    const bytes = fieldTableBytes(headers);
    if (bytes > MAX_HEADER_TABLE_BYTES) {
      this.ctx.hub.emitError(
        new Error(
          `${describeDelivery(delivery)} of '${this.spec.queue}' is dead-lettered instead of ` +
            `retried: its headers and the retry's come to ${bytes} bytes, over the ` +
            `${MAX_HEADER_TABLE_BYTES} an AMQP message can carry. Send smaller headers (the body ` +
            'has no such limit).',
        ),
      );
      await this.publishDeadLetter(
        delivery,
        { action: 'dead-letter', failure: settlement.failure },
        'not retried, a retry copy would not fit',
      );
      return;
    }
    // Straight back to the failing queue by name (default exchange), or through the delay levels.
    const direct = this.copyToQueue(delivery, headers);
    if (delayMs > 0) await this.ctx.delays.publish(delayMs, direct);
    else await this.ctx.publish(direct);
  }

  /**
   * Parks `delivery`, a delayed publish not yet due, for `delayMs`: through the delay levels back to
   * this queue (see `amqp-parking.ts`).
   */
  async park(delivery: Delivery, delayMs: number): Promise<void> {
    await this.ctx.delays.publish(delayMs, this.copyToQueue(delivery, parkedHeaders(delivery)));
  }

  private copyToQueue(delivery: Delivery, headers: Record<string, unknown>): PublishCommand {
    return {
      exchange: '',
      routingKey: this.spec.queue,
      content: delivery.body,
      properties: copyProperties(delivery, headers),
      target: this.spec.queue,
    };
  }

  /**
   * Publishes the dead letter of `delivery`, without its largest headers (not the library's) when
   * they would not fit; what was dropped is listed in `x-messaging-dropped-headers`, after `note`.
   */
  async publishDeadLetter(
    delivery: Delivery,
    settlement: Extract<Settlement, { action: 'dead-letter' }>,
    note?: string,
  ): Promise<void> {
    const dlq = deadLetterQueueName(this.spec.service);
    const full = deadLetterHeaders(
      delivery,
      settlement.failure,
      withoutBrokerHeaders(delivery.headers),
    );
    full[DEAD_LETTER_ORDER_HEADER] = this.deadLetterClock.next();
    // A letter cut down before (and replayed since) keeps what it lost then.
    const before = typeof full[DROPPED_HEADERS] === 'string' ? `${full[DROPPED_HEADERS]}; ` : '';
    const { headers, dropped } = fitHeaders(
      full,
      (gone) =>
        `${before}${note ? `${note}; ` : ''}dropped to fit ${MAX_HEADER_TABLE_BYTES} bytes: ${listDropped(gone)}`,
    );
    if (dropped.length > 0) {
      this.ctx.hub.emitError(
        new Error(
          `The dead letter of ${describeDelivery(delivery)} of '${this.spec.queue}' leaves out ` +
            `${listDropped(dropped)}: its headers would not fit the ${MAX_HEADER_TABLE_BYTES} bytes ` +
            `an AMQP message can carry (listed in its ${DROPPED_HEADERS} header).`,
        ),
      );
    }
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
        contentEncoding: reply.contentEncoding,
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
