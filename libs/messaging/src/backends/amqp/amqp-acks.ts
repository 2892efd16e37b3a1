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
 * keep the prefetch window full of settled messages). A requeue goes at once, alone; an ack that must
 * be on the wire before what follows it (the ack sent before a reply) goes at once, with those owed.
 *
 * Delivery tags count up from 1 on each channel and arrive in order, so settling tag t tells that
 * every tag below it has been delivered: the batcher keeps the tags delivered and not yet settled
 * (never more than the prefetch window) and the acks owed since the last flush, nothing else, however
 * long one delivery stays in flight. Never acknowledging a tag twice matters: RabbitMQ closes the
 * channel on an unknown tag, and a multiple ack names its highest tag, which must still be outstanding.
 */
export class AckBatcher {
  /** Highest delivery tag settled so far: every tag up to it has been delivered. */
  private highest = 0;
  /** Tags up to `highest` delivered and not yet settled. */
  private readonly inFlight = new Set<number>();
  /** No tag below this one is in flight. */
  private lowest = 1;
  /**
   * Settled deliveries whose ack is owed, in the order they settled: the messages amqplib handed over
   * (its ack reads only their tag, but OpenTelemetry's amqplib instrumentation ends a message's
   * consumer span only when acked with that very object).
   */
  private owed: Message[] = [];
  private flushScheduled = false;

  constructor(
    private readonly channel: AckChannel,
    private readonly schedule: (flush: () => void) => void = setImmediate,
  ) {}

  /** Tags the batcher holds: those in flight below the highest settled one, and the acks owed. */
  get tracked(): number {
    return this.inFlight.size + this.owed.length;
  }

  /** Acknowledges `tag` (delivered as `message`) with the next batch. */
  ack(tag: number, message: Message = tagged(tag)): void {
    this.settle(tag);
    this.owed.push(message);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.schedule(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /** Acknowledges `tag` now, with the acks owed so far. */
  ackNow(tag: number, message: Message = tagged(tag)): void {
    this.settle(tag);
    this.owed.push(message);
    this.flush();
  }

  /** Hands `tag` back to its queue, now. */
  requeue(tag: number, message: Message = tagged(tag)): void {
    this.channel.nack(message, false, true);
    this.settle(tag);
  }

  /** Sends the acks owed so far: those below every delivery in flight with one frame, the others alone. */
  flush(): void {
    if (this.owed.length === 0) return;
    const owed = this.owed;
    this.owed = [];
    const lowest = this.lowestInFlight();
    let upTo: Message | undefined;
    for (const message of owed) {
      const tag = message.fields.deliveryTag;
      if (tag < lowest && tag > (upTo?.fields.deliveryTag ?? 0)) upTo = message;
    }
    if (upTo) this.channel.ack(upTo, true);
    for (const message of owed)
      if (message.fields.deliveryTag > lowest) this.channel.ack(message, false);
  }

  private settle(tag: number): void {
    if (tag > this.highest) {
      for (let delivered = this.highest + 1; delivered < tag; delivered++)
        this.inFlight.add(delivered);
      this.highest = tag;
    } else {
      this.inFlight.delete(tag);
    }
  }

  private lowestInFlight(): number {
    while (this.lowest <= this.highest && !this.inFlight.has(this.lowest)) this.lowest++;
    return this.lowest;
  }
}

/** The part of a message amqplib's `ack` and `nack` read. */
function tagged(deliveryTag: number): Message {
  return { fields: { deliveryTag } } as Message;
}
