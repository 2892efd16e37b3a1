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
  /** Publishers waiting for this queue to drain (flow control), while it is over `HIGH_WATER`. */
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
