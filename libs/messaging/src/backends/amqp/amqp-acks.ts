import type { Message } from 'amqplib';

/** What acknowledging needs of an amqplib channel. */
export interface AckChannel {
  ack(message: Message, allUpTo?: boolean): void;
  nack(message: Message, allUpTo?: boolean, requeue?: boolean): void;
}

/**
 * Acknowledges the deliveries of one consumer channel in batches. Handlers run concurrently and
 * finish out of order; once every delivery up to some tag is settled, one `basic.ack` with
 * `multiple` covers them all, sent at the end of the current turn of the event loop: a burst of
 * handlers that finish together costs one frame instead of one each, for this process and for
 * RabbitMQ. An ack never covers a delivery still in flight, and a delivery still in flight never
 * holds back the acks of later ones: those go alone at the same moment (else a slow handler would
 * keep the prefetch window full of settled messages). A requeue, and an ack that must be on the wire
 * before what follows it (the ack sent before a reply), go at once, alone.
 *
 * Delivery tags count up from 1 on each channel, so the deliveries not yet acknowledged are known
 * from the settled ones. Never acknowledging a tag twice matters: RabbitMQ closes the channel on an
 * unknown tag, and a multiple ack names its highest tag, which must still be outstanding.
 */
export class AckBatcher {
  /** Lowest delivery tag not yet settled. */
  private next = 1;
  /** Settled tags above `next`: true when their ack is owed (batched), false when already sent. */
  private readonly settledAbove = new Map<number, boolean>();
  /** Highest tag below `next` whose ack is owed; 0 when none is. */
  private owedUpTo = 0;
  private flushScheduled = false;

  constructor(
    private readonly channel: AckChannel,
    private readonly schedule: (flush: () => void) => void = setImmediate,
  ) {}

  /** Acknowledges `tag` with the next batch. */
  ack(tag: number): void {
    this.settle(tag, true);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.schedule(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /** Acknowledges `tag` now: with the batch when it completes one, else alone. */
  ackNow(tag: number): void {
    if (tag === this.next) {
      this.settle(tag, true);
      this.flush();
    } else {
      this.channel.ack(tagged(tag), false);
      this.settle(tag, false);
    }
  }

  /** Hands `tag` back to its queue, now. */
  requeue(tag: number): void {
    this.channel.nack(tagged(tag), false, true);
    this.settle(tag, false);
  }

  /** Sends the acks owed so far: the settled run with one frame, the others alone. */
  flush(): void {
    if (this.owedUpTo > 0) {
      const upTo = this.owedUpTo;
      this.owedUpTo = 0;
      this.channel.ack(tagged(upTo), true);
    }
    for (const [tag, owed] of this.settledAbove) {
      if (!owed) continue;
      this.settledAbove.set(tag, false);
      this.channel.ack(tagged(tag), false);
    }
  }

  private settle(tag: number, owed: boolean): void {
    if (tag !== this.next) {
      this.settledAbove.set(tag, owed);
      return;
    }
    if (owed) this.owedUpTo = tag;
    this.next++;
    for (let more = this.settledAbove.get(this.next); more !== undefined;) {
      this.settledAbove.delete(this.next);
      if (more) this.owedUpTo = this.next;
      more = this.settledAbove.get(++this.next);
    }
  }
}

/** The part of a message amqplib's `ack` and `nack` read. */
function tagged(deliveryTag: number): Message {
  return { fields: { deliveryTag } } as Message;
}
