/**
 * How a subscription carries out the core's settlements on Redis: the retry copy (to the queue's own
 * stream, or for an external queue to `<prefix>:r:<queue>`, or held in the delayed set), the dead letter (to `<service>.dead-letter`) and the
 * acknowledgement in one `MULTI`, then the reply, if any. Also the requeue of what was read after
 * cancel, and the dead letter of a delivery over `deliveryLimit`.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type {
  Delivery,
  OutgoingReply,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { deadLetterHeaders, retryHeaders } from '../../backend/message-headers';
import { deadLetterQueueName } from '../../backend/queue-names';
import type { Logger } from '@nestjs/common';
import type { BackendEventHub } from '../../backend/backend-events';
import type { ResolvedRedisOptions } from './redis-backend.options';
import { copyFields, deadLetterFields, type EntryFields } from './redis-messages';
import { DELAY_SCRIPT } from './redis-scripts';
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

export class RedisSettler {
  /**
   * Where retries and requeues go: the queue's stream, or for an external queue (a foreign stream
   * other groups may read) a stream of ours that only this queue's group reads.
   */
  private readonly ownStream: string;

  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly ctx: RedisSettlerContext,
  ) {
    this.ownStream = spec.external
      ? ctx.keys.externalRetries(spec.queue)
      : ctx.keys.queue(spec.queue);
  }

  /**
   * Carries out `settlement`: the retry copy or dead letter and the acknowledgement in one `MULTI`,
   * so that neither is lost nor duplicated; then the reply, if any.
   */
  async settle(
    stream: string,
    id: string,
    delivery: Delivery,
    settlement: Settlement,
  ): Promise<void> {
    const { keys } = this.ctx;
    const multi = this.ctx.command.multi();
    if (settlement.action === 'retry') {
      const fields = copyFields(
        delivery,
        retryHeaders(delivery, settlement.failure),
        'retry',
        delivery.attempt + 1,
      );
      if (settlement.delayMs > 0) this.delay(multi, fields, settlement.delayMs);
      // Never trimmed (no MAXLEN): what a queue stream holds is unhandled (handled entries are deleted).
      else multi.xadd(this.ownStream, '*', ...fields);
    } else if (settlement.action === 'dead-letter') {
      const fields = deadLetterFields(delivery, deadLetterHeaders(delivery, settlement.failure));
      const dlq = keys.queue(deadLetterQueueName(this.spec.service));
      // Never trimmed: a dead letter stays until replayed or purged.
      multi.xadd(dlq, '*', ...fields);
    }
    this.ack(multi, stream, id);
    await execOrThrow(multi);
    if (settlement.action !== 'retry' && settlement.reply && delivery.replyTo !== undefined)
      await this.reply(delivery, settlement.reply);
  }

  /** A delivery whose consumers kept dying: to the dead-letter queue, unhandled. */
  deliveryLimitExceeded(delivery: Delivery): Settlement {
    const limit = this.ctx.options.deliveryLimit;
    this.ctx.logger.error(
      `Message ${delivery.messageId} of '${this.spec.queue}' was claimed from crashed consumers more than ${limit} times: dead-lettered`,
    );
    return {
      action: 'dead-letter',
      failure: {
        reason: 'delivery-limit',
        message: `delivered more than ${limit} times without being settled (its consumer crashed or lost its connection each time)`,
        errorClass: 'DeliveryLimitExceeded',
        at: new Date(),
      },
    };
  }

  /** A delivery read after cancel goes back to its queue stream as it was, for another instance. */
  async requeue(stream: string, id: string, delivery: Delivery): Promise<void> {
    const multi = this.ctx.command.multi();
    const fields = copyFields(delivery, delivery.headers, 'requeue', delivery.attempt);
    multi.xadd(this.ownStream, '*', ...fields);
    this.ack(multi, stream, id);
    await execOrThrow(multi);
  }

  private delay(multi: ReturnType<Redis['multi']>, fields: EntryFields, delayMs: number): void {
    const { keys } = this.ctx;
    multi.eval(
      DELAY_SCRIPT,
      0,
      keys.prefix,
      this.spec.external ? 'r' : 'q',
      this.spec.queue,
      '0',
      Math.ceil(delayMs),
      randomUUID(),
      ...fields,
    );
  }

  private ack(multi: ReturnType<Redis['multi']>, stream: string, id: string): void {
    multi.xack(stream, this.spec.queue, id);
    // A queue stream of ours has one group: what it acknowledged is not needed any more.
    if (stream === this.ownStream) multi.xdel(stream, id);
  }

  private async reply(delivery: Delivery, reply: OutgoingReply): Promise<void> {
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
    await this.ctx.sendReply(replyTo, reply);
  }
}

/** Runs a `MULTI` and throws the first error of its commands. */
export async function execOrThrow(multi: ReturnType<Redis['multi']>): Promise<unknown[]> {
  const results = await multi.exec();
  if (!results) throw new Error('the Redis transaction was aborted');
  for (const [error] of results) if (error) throw error;
  return results.map(([, value]) => value);
}
