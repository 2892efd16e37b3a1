/**
 * How a subscription carries out the core's settlements on Redis. A plain acknowledgement joins the
 * others of its turn ({@link AckBatcher}: one `XACK` per stream, or `ACK_DELETE_SCRIPT` on a queue
 * stream of ours); a retry copy (to the queue's own stream, or for an external queue to
 * `<prefix>:r:<queue>`, or held in the delayed set), a dead letter (to `<service>.dead-letter`) or a
 * requeue is written and its original acknowledged by one script (`SETTLE_SCRIPT`), copy first. A
 * reply goes out at once, beside the acknowledgement (the contract allows either order; a reply that
 * waited for the batch would add its delay to every request). Also the settlements of volatile
 * requests, which have nothing to acknowledge, and the dead letter of a delivery over `deliveryLimit`.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type {
  Delivery,
  OutgoingReply,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import type { DeliveryLimitVerdict } from '../../backend/delivery-limit';
import { deadLetterHeaders, retryHeaders } from '../../backend/message-headers';
import { deadLetterQueueName } from '../../backend/queue-names';
import type { Logger } from '@nestjs/common';
import type { BackendEventHub } from '../../backend/backend-events';
import { AckBatcher } from './redis-acks';
import type { ResolvedRedisOptions } from './redis-backend.options';
import { coalesceWrites } from './redis-connection';
import { copyFields, deadLetterFields, type EntryFields } from './redis-messages';
import { ACK_DELETE_SCRIPT, SETTLE_SCRIPT } from './redis-message-scripts';
import { runScript } from './redis-scripts';
import type { RedisKeys } from './redis-topology';

/** What settling needs from the backend. */
export interface RedisSettlerContext {
  readonly options: ResolvedRedisOptions;
  readonly keys: RedisKeys;
  readonly hub: BackendEventHub;
  readonly logger: Logger;
  /** The backend's shared command connection (never blocked). */
  readonly command: Redis;
  /** Sends a reply to a request (pub/sub). */
  sendReply(replyTo: string, reply: OutgoingReply): Promise<void>;
}

/** `stream` argument of `SETTLE_SCRIPT` for a volatile request: nothing to acknowledge. */
const NO_STREAM = '';

function nothing(): void {}

export class RedisSettler {
  /**
   * Where retries and requeues go: the queue's stream, or for an external queue (a foreign stream
   * other groups may read) a stream of ours that only this queue's group reads.
   */
  private readonly ownStream: string;
  private readonly acks: AckBatcher;

  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly ctx: RedisSettlerContext,
  ) {
    this.ownStream = spec.external
      ? ctx.keys.externalRetries(spec.queue)
      : ctx.keys.queue(spec.queue);
    this.acks = new AckBatcher((stream, ids) => this.sendAcks(stream, ids));
  }

  /**
   * Carries out `settlement` of entry `id` of `stream`: a plain acknowledgement in this turn's batch,
   * or the copy and the acknowledgement in one script, so that neither is lost nor duplicated; the
   * reply, if any, at once.
   */
  settle(stream: string, id: string, delivery: Delivery, settlement: Settlement): Promise<void> {
    switch (settlement.action) {
      case 'ack':
        if (settlement.reply && delivery.replyTo !== undefined)
          this.reply(delivery, settlement.reply);
        return this.acks.ack(stream, id);
      case 'retry':
        return this.retry(stream, id, delivery, settlement);
      case 'dead-letter':
        return this.deadLetter(stream, id, delivery, settlement);
      case 'requeue':
        return this.requeue(stream, id, delivery);
    }
  }

  /**
   * Carries out the settlement of a volatile request (no stream entry, nothing to acknowledge): the
   * reply; a dead letter first when there is one. The core never retries a request; a retry would
   * still be kept, in the queue's stream.
   */
  settleRequest(delivery: Delivery, settlement: Settlement): Promise<void> {
    switch (settlement.action) {
      case 'ack':
        if (settlement.reply && delivery.replyTo !== undefined)
          this.reply(delivery, settlement.reply);
        return Promise.resolve();
      case 'retry':
        return this.retry(NO_STREAM, '', delivery, settlement);
      case 'dead-letter':
        return this.deadLetter(NO_STREAM, '', delivery, settlement);
      case 'requeue':
        return Promise.resolve(); // came over pub/sub: nothing to hand back, the caller times out
    }
  }

  /** Dead-letters unhandled a delivery whose consumers kept dying (the verdict of `decideDeliveryLimit`). */
  deadLetterOverLimit(
    stream: string,
    id: string,
    delivery: Delivery,
    verdict: DeliveryLimitVerdict,
  ): Promise<void> {
    this.ctx.logger.error(
      `Message ${delivery.messageId} of '${this.spec.queue}' was dead-lettered unhandled: ${verdict.failure.message}`,
    );
    return this.settle(stream, id, delivery, verdict);
  }

  /**
   * A delivery read after cancel, or one the core gave up on (`requeue`), goes back to its queue
   * stream as it was, for another instance.
   */
  requeue(stream: string, id: string, delivery: Delivery): Promise<void> {
    const fields = copyFields(delivery, delivery.headers, 'requeue', delivery.attempt);
    return this.copy(stream, id, 'x', this.ownStream, 0, fields);
  }

  /** Sends this turn's acknowledgements now (before a close, so that they do not wait a tick). */
  flushAcks(): void {
    this.acks.flush();
  }

  private retry(
    stream: string,
    id: string,
    delivery: Delivery,
    settlement: Extract<Settlement, { action: 'retry' }>,
  ): Promise<void> {
    const fields = copyFields(
      delivery,
      retryHeaders(delivery, settlement.failure),
      'retry',
      delivery.attempt + 1,
    );
    if (settlement.delayMs > 0) {
      const to = `${this.spec.external ? 'r' : 'q'}:${this.spec.queue}`;
      return this.copy(stream, id, 'd', to, Math.ceil(settlement.delayMs), fields);
    }
    // Never trimmed (no MAXLEN): what a queue stream holds is unhandled (handled entries are deleted).
    return this.copy(stream, id, 'x', this.ownStream, 0, fields);
  }

  private deadLetter(
    stream: string,
    id: string,
    delivery: Delivery,
    settlement: Extract<Settlement, { action: 'dead-letter' }>,
  ): Promise<void> {
    const fields = deadLetterFields(delivery, deadLetterHeaders(delivery, settlement.failure));
    const dlq = this.ctx.keys.queue(deadLetterQueueName(this.spec.service));
    // Never trimmed: a dead letter stays until replayed or purged.
    const written = this.copy(stream, id, 'x', dlq, 0, fields);
    const reply = settlement.reply;
    if (!reply || delivery.replyTo === undefined) return written;
    return written.then(() => this.reply(delivery, reply));
  }

  /** Writes a copy (`x`: to a stream; `d`: held for `delayMs`), then acknowledges the original. */
  private copy(
    stream: string,
    id: string,
    mode: 'x' | 'd',
    target: string,
    delayMs: number,
    fields: EntryFields,
  ): Promise<void> {
    coalesceWrites(this.ctx.command);
    return runScript(
      this.ctx.command,
      SETTLE_SCRIPT,
      1,
      this.ctx.keys.slotKey,
      this.ctx.keys.prefix,
      stream,
      this.spec.queue,
      id,
      stream === this.ownStream ? '1' : '0',
      mode,
      target,
      delayMs,
      mode === 'd' ? randomUUID() : '',
      ...fields,
    ).then(nothing);
  }

  private sendAcks(stream: string, ids: readonly string[]): Promise<unknown> {
    coalesceWrites(this.ctx.command);
    // A queue stream of ours has one group: what it acknowledged is not needed any more.
    return stream === this.ownStream
      ? runScript(this.ctx.command, ACK_DELETE_SCRIPT, 1, stream, this.spec.queue, ...ids)
      : this.ctx.command.xack(stream, this.spec.queue, ...ids);
  }

  /** Sends a reply; a failure is reported, and never fails the settlement (it is acknowledged). */
  private reply(delivery: Delivery, reply: OutgoingReply): void {
    const replyTo = delivery.replyTo as string;
    if (!replyTo.startsWith(this.ctx.keys.anyReplyPrefix)) {
      this.ctx.hub.emitError(
        new Error(
          `Message ${delivery.messageId} on '${this.spec.queue}' asks for a reply to '${replyTo}', ` +
            `not a reply channel of prefix '${this.ctx.keys.prefix}': left unanswered.`,
        ),
      );
      return;
    }
    this.ctx
      .sendReply(replyTo, reply)
      .catch((error: Error) =>
        this.ctx.hub.emitError(
          new Error(
            `Could not send the reply to message ${delivery.messageId} of '${this.spec.queue}' (its caller times out): ${error.message}`,
            { cause: error },
          ),
        ),
      );
  }
}
