/**
 * How one consumer carries out the core's settlements on JetStream: the retry copy (to the failing
 * queue's subject, through the delayed stream when it waits), the dead letter (to the service's
 * dead-letter subject), and the reply (over core NATS, only to an inbox). The consumer acks the
 * original only after the copy's PubAck. `origin` (stream and sequence of the delivered message)
 * makes the copy's message id: the copy of a redelivery is a duplicate the stream drops. A volatile
 * request (never redelivered) has none: its copy gets a fresh id.
 */
import type { Logger } from '@nestjs/common';
import type { BackendEventHub } from '../../backend/backend-events';
import type {
  Delivery,
  OutgoingReply,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { deadLetterHeaders, retryHeaders } from '../../backend/message-headers';
import type { ResolvedNatsOptions } from './nats-backend.options';
import { describe, type NatsLink } from './nats-connection';
import { copyProperties, encodeHeaders } from './nats-messages';
import { INBOX_PREFIX } from './nats-requester';
import type { NatsNames } from './nats-topology';
import type { WireHeaders } from './nats-wire';

/** What settling (and consuming) needs from the backend. */
export interface NatsSettlerContext {
  readonly options: ResolvedNatsOptions;
  readonly names: NatsNames;
  readonly hub: BackendEventHub;
  readonly logger: Logger;
  link(): Promise<NatsLink>;
  /** The link when connected (the client buffers what is sent while it reconnects). */
  current(): NatsLink | undefined;
  publish(subject: string, body: Uint8Array, headers: WireHeaders, msgID?: string): Promise<void>;
}

export class NatsSettler {
  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly ctx: NatsSettlerContext,
  ) {}

  /** Publishes the retry copy: straight to the queue, or through the delayed stream when delayed. */
  async publishRetry(
    delivery: Delivery,
    settlement: Extract<Settlement, { action: 'retry' }>,
    origin?: string,
  ): Promise<void> {
    const { names } = this.ctx;
    const delayMs = Math.max(0, settlement.delayMs);
    const headers = encodeHeaders(retryHeaders(delivery, settlement.failure), {
      ...copyProperties(delivery, delivery.attempt + 1),
      due: delayMs > 0 ? Date.now() + delayMs : undefined,
    });
    const target = names.queueSubject(this.spec.queue);
    await this.ctx.publish(
      delayMs > 0 ? names.delayedSubject(target) : target,
      delivery.body,
      headers,
      origin && `retry:${origin}`,
    );
  }

  /** Publishes the dead letter to the service's dead-letter subject. */
  async publishDeadLetter(
    delivery: Delivery,
    settlement: Extract<Settlement, { action: 'dead-letter' }>,
    origin?: string,
  ): Promise<void> {
    const headers = encodeHeaders(
      deadLetterHeaders(delivery, settlement.failure),
      copyProperties(delivery),
    );
    await this.ctx.publish(
      this.ctx.names.deadLetterSubject(this.spec.service),
      delivery.body,
      headers,
      origin && `dead:${origin}`,
    );
  }

  /** `delivery`, or as an event when its reply subject is not an inbox. */
  trustedReplyTo(delivery: Delivery): Delivery {
    if (delivery.replyTo === undefined || delivery.replyTo.startsWith(INBOX_PREFIX))
      return delivery;
    this.ctx.hub.emitError(
      new Error(
        `Message ${delivery.messageId} on '${this.spec.queue}' asks for a reply to '${delivery.replyTo}': ` +
          `handled as an event, unanswered. Only inbox subjects (${INBOX_PREFIX}…) are answered.`,
      ),
    );
    return { ...delivery, replyTo: undefined };
  }

  /**
   * Sends a reply over core NATS; a reply lost leaves its caller to time out. The reply subject
   * identifies the request: a reply carries its headers, content type and content encoding only.
   */
  sendReply(delivery: Delivery, reply: OutgoingReply): void {
    if (!delivery.replyTo) return;
    try {
      const headers = encodeHeaders(reply.headers, {
        contentType: reply.contentType,
        contentEncoding: reply.contentEncoding,
      });
      const nc = this.ctx.current()?.nc;
      if (!nc) throw new Error('not connected');
      nc.publish(delivery.replyTo, reply.body, { headers });
    } catch (error) {
      this.ctx.hub.emitError(
        new Error(
          `could not send the reply to a request on '${this.spec.queue}': ${describe(error)}`,
        ),
      );
    }
  }
}
