/**
 * How the messages of an in-memory queue reach its consumers, and what their settlements do: queued
 * messages go round-robin to the consumers with free capacity (to the one active consumer, in order,
 * on an exclusive queue); a retry waits on the broker's scheduler, a dead letter goes to its service's
 * list, a reply to its mailbox, a requeue back to the head of the queue. Dispatches run as microtasks
 * while the broker has been busy less than {@link MAX_BUSY_MS} in a turn of the event loop.
 */
import type { OutgoingReply, Delivery, Settlement } from '../../backend/broker-backend.interface';
import { deadLetterHeaders, retryHeaders } from '../../backend/message-headers';
import { describeFailure } from '../../errors/failure';
import type { BrokerActivity } from './broker-activity';
import type { MemoryDeadLetters } from './memory-dead-letters';
import {
  exclusiveOwner,
  giveBack,
  letThrough,
  toDelivery,
  type ExclusiveState,
  type MemoryConsumer,
  type MemoryQueue,
  type QueuedMessage,
} from './memory-queue';

/** Longest stretch of deliveries made as microtasks before the broker yields to the event loop. */
const MAX_BUSY_MS = 50;

/** What the dispatcher needs from its broker. */
export interface MemoryDispatchContext {
  readonly activity: BrokerActivity;
  readonly deadLetters: MemoryDeadLetters;
  /** Sends `reply` to the mailbox of `replyTo`. */
  sendReply(replyTo: string, reply: OutgoingReply): void;
}

export class MemoryDispatcher {
  /** When the current stretch of microtask dispatches began (reset on each turn of the event loop). */
  private busySince?: number;

  constructor(private readonly ctx: MemoryDispatchContext) {}

  /** Adds `queued` at the tail of `queue` and dispatches it soon. */
  enqueue(queue: MemoryQueue, queued: QueuedMessage): void {
    queue.messages.push(queued);
    this.schedule(queue);
  }

  /**
   * Dispatches `queue` soon: as a microtask (a message then goes from publish to handler while still
   * young, which keeps the garbage collector's work small) until the broker has been busy for
   * {@link MAX_BUSY_MS} in this turn of the event loop, then on the next turn, so that a busy broker
   * never starves timers and I/O for long.
   */
  schedule(queue: MemoryQueue): void {
    if (queue.scheduled || queue.messages.size === 0) return;
    queue.scheduled = true;
    const run = (): void => {
      queue.scheduled = false;
      this.dispatch(queue);
    };
    if (this.mayStayBusy()) queueMicrotask(run);
    else setImmediate(run);
  }

  private mayStayBusy(): boolean {
    const now = performance.now();
    if (this.busySince === undefined) {
      this.busySince = now;
      setImmediate(() => (this.busySince = undefined));
    }
    return now - this.busySince < MAX_BUSY_MS;
  }

  /** Hands queued messages to consumers with free capacity, round-robin. */
  private dispatch(queue: MemoryQueue): void {
    if (queue.exclusive) return this.dispatchExclusive(queue, queue.exclusive);
    while (queue.messages.size > 0) {
      const consumer = this.nextFreeConsumer(queue);
      if (!consumer) return;
      const queued = queue.messages.shift() as QueuedMessage;
      letThrough(queue);
      this.deliver(queue, consumer, queued);
    }
  }

  /** Hands queued messages, in order, to the one consumer of an exclusive queue (see {@link exclusiveOwner}). */
  private dispatchExclusive(queue: MemoryQueue, state: ExclusiveState): void {
    const owner = exclusiveOwner(queue, state);
    if (!owner) return;
    while (queue.messages.size > 0 && owner.inFlight < owner.concurrency) {
      const queued = queue.messages.shift() as QueuedMessage;
      letThrough(queue);
      this.deliver(
        queue,
        owner,
        queued.order === undefined ? { ...queued, order: ++state.delivered } : queued,
      );
    }
  }

  private nextFreeConsumer(queue: MemoryQueue): MemoryConsumer | undefined {
    const { consumers } = queue;
    for (let i = 0; i < consumers.length; i++) {
      const consumer = consumers[(queue.next + i) % consumers.length];
      if (consumer.active && consumer.inFlight < consumer.concurrency) {
        queue.next = (queue.next + i + 1) % consumers.length;
        return consumer;
      }
    }
    return undefined;
  }

  private deliver(queue: MemoryQueue, consumer: MemoryConsumer, queued: QueuedMessage): void {
    const delivery = toDelivery(queue.name, queued);
    consumer.inFlight++;
    consumer.unsettled.add(queued);
    this.ctx.activity.delivered();
    const settled = (settlement: Settlement): void => {
      consumer.inFlight--;
      // A consumer that closed meanwhile already gave the message back: its settlement is stale.
      if (consumer.unsettled.delete(queued))
        this.settle(queue, consumer, queued, delivery, settlement);
      this.schedule(queue);
      this.ctx.activity.settled();
    };
    consumer.handler(delivery).then(settled, (error: unknown) =>
      // The core never rejects; if a handler does, keep the message rather than loop on it.
      settled({
        action: 'dead-letter',
        failure: describeFailure(error, 'handler-error', new Date()),
      }),
    );
  }

  private settle(
    queue: MemoryQueue,
    consumer: MemoryConsumer,
    queued: QueuedMessage,
    delivery: Delivery,
    settlement: Settlement,
  ): void {
    if (settlement.action === 'requeue') {
      giveBack(queue, [queued]);
      return;
    }
    if (settlement.action !== 'retry' && settlement.reply && queued.replyTo !== undefined) {
      this.ctx.sendReply(queued.replyTo, settlement.reply);
    }
    if (settlement.action === 'retry') {
      const retry: QueuedMessage = {
        ...queued,
        headers: retryHeaders(delivery, settlement.failure),
        attempt: delivery.attempt + 1,
        redelivered: false,
        order: undefined,
      };
      // On the scheduler (unref'd timers by default: a pending retry never keeps the process alive).
      this.ctx.activity.delay(settlement.delayMs, () => this.enqueue(queue, retry));
    } else if (settlement.action === 'dead-letter') {
      this.ctx.deadLetters.add(consumer.service, {
        body: delivery.body,
        headers: deadLetterHeaders(delivery, settlement.failure),
        messageId: delivery.messageId,
        correlationId: delivery.correlationId,
        contentType: delivery.contentType,
        contentEncoding: delivery.contentEncoding,
      });
    }
  }
}
