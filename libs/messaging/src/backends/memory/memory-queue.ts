import type { DeliveryHandler, OutgoingMessage } from '../../backend/broker-backend.interface';
import type { MessageFifo } from '../../backend/message-fifo';

/** A message waiting in a queue: what was published, and the headers of this copy. */
export interface QueuedMessage {
  readonly message: OutgoingMessage;
  /** The topic it was routed by (the queue name for a direct send). */
  readonly routedBy: string;
  /** Its original topic and attempt, as the library recorded them (never read from its headers). */
  readonly topic: string;
  readonly attempt: number;
  readonly headers: Readonly<Record<string, unknown>>;
  readonly redelivered: boolean;
  readonly replyTo?: string;
}

/** A consumer of a queue: one subscription of one backend. */
export interface MemoryConsumer {
  /** The consumer's service, whose dead-letter list gets its failures. */
  readonly service: string;
  readonly handler: DeliveryHandler;
  readonly concurrency: number;
  inFlight: number;
  active: boolean;
  /** Deliveries handed out and not yet settled, so a closing backend can give them back. */
  readonly unsettled: Set<QueuedMessage>;
}

/** A queue: its bindings, its ready messages and its consumers. */
export interface MemoryQueue {
  readonly name: string;
  readonly bindings: Set<string>;
  readonly messages: MessageFifo<QueuedMessage>;
  readonly consumers: MemoryConsumer[];
  next: number;
  scheduled: boolean;
  /** Publishers waiting for this queue to drain (flow control: {@link heldBack}). */
  gate?: { readonly promise: Promise<void>; open(): void };
}

/** Whether some consumer of `queue` takes messages now. */
export function hasActiveConsumer(queue: MemoryQueue): boolean {
  return queue.consumers.some((consumer) => consumer.active);
}

/** A copy of `message` for one queue, as its first delivery. */
export function queuedCopy(
  message: OutgoingMessage,
  routedBy: string,
  replyTo?: string,
): QueuedMessage {
  return {
    message,
    routedBy,
    topic: routedBy,
    attempt: 1,
    headers: message.headers,
    redelivered: false,
    replyTo,
  };
}

/** Ready messages in a consumed queue above which its publishers wait (flow control). */
const HIGH_WATER = 1_000;
/** Publishers waiting on a queue go on once it is down to this, or on the next turn at the latest. */
const LOW_WATER = 500;

/**
 * Flow control of one queue: undefined when a publisher to it may go on at once, else a promise
 * that resolves when it may. A queue with consumers and more than {@link HIGH_WATER} ready messages
 * holds its publishers until it is down to {@link LOW_WATER} ({@link letThrough}), or until the next
 * turn of the event loop at the latest, so that a handler publishing to its own queue never
 * deadlocks.
 */
export function heldBack(queue: MemoryQueue): Promise<void> | undefined {
  if (queue.messages.size <= HIGH_WATER || queue.consumers.length === 0) return undefined;
  if (!queue.gate) {
    let resolve!: () => void;
    const gate = {
      promise: new Promise<void>((r) => (resolve = r)),
      open: (): void => {
        if (queue.gate === gate) queue.gate = undefined;
        resolve();
      },
    };
    queue.gate = gate;
    setImmediate(gate.open);
  }
  return queue.gate.promise;
}

/** Lets the publishers of `queue` go on once it is down to {@link LOW_WATER} ready messages. */
export function letThrough(queue: MemoryQueue): void {
  if (queue.gate && queue.messages.size <= LOW_WATER) queue.gate.open();
}
