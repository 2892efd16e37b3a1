import type {
  Delivery,
  DeliveryHandler,
  OutgoingMessage,
} from '../../backend/broker-backend.interface';
import type { MessageFifo } from '../../backend/message-fifo';
import type { QueueWork } from './broker-activity';

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
  /**
   * On an exclusive queue, its place in the queue's order, given at its first delivery: what puts
   * the deliveries a consumer gives back in order again at the head of the queue.
   */
  readonly order?: number;
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
  /** Set on a queue with a single active consumer (`SubscriptionSpec.exclusive`). */
  readonly exclusive?: ExclusiveState;
}

/** The single active consumer of an exclusive queue. */
export interface ExclusiveState {
  /**
   * The consumer that takes the queue's messages: the first live one. One that was cancelled or
   * closed stays the owner until it settled or gave back all it holds, so that its successor starts
   * with what it gave back, in order.
   */
  owner?: MemoryConsumer;
  /** Deliveries made so far: the next {@link QueuedMessage.order}. */
  delivered: number;
}

/** The consumer of an exclusive queue that may take deliveries now, if any (see {@link ExclusiveState.owner}). */
export function exclusiveOwner(
  queue: MemoryQueue,
  state: ExclusiveState,
): MemoryConsumer | undefined {
  const { owner } = state;
  if (owner && (owner.active || owner.unsettled.size > 0)) return owner.active ? owner : undefined;
  state.owner = queue.consumers.find((consumer) => consumer.active);
  return state.owner;
}

/**
 * Gives deliveries back to the head of `queue`, marked redelivered: on an exclusive queue merged in
 * queue order with what was given back before and is still waiting there.
 */
export function giveBack(queue: MemoryQueue, returned: readonly QueuedMessage[]): void {
  if (!queue.exclusive) {
    queue.messages.unshiftAll(returned.map((m) => ({ ...m, redelivered: true })));
    return;
  }
  const waiting: QueuedMessage[] = [];
  while (queue.messages.peek()?.order !== undefined)
    waiting.push(queue.messages.shift() as QueuedMessage);
  const merged = [...waiting, ...returned.map((m) => ({ ...m, redelivered: true }))];
  queue.messages.unshiftAll(merged.sort((a, b) => (a.order as number) - (b.order as number)));
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

/** The delivery of `queued` from queue `queue`. */
export function toDelivery(queue: string, queued: QueuedMessage): Delivery {
  const { message } = queued;
  return {
    body: message.body,
    topic: queued.topic,
    queue,
    headers: queued.headers,
    messageId: message.messageId,
    correlationId: message.correlationId,
    contentType: message.contentType,
    contentEncoding: message.contentEncoding,
    replyTo: queued.replyTo,
    timestamp: message.timestamp,
    attempt: queued.attempt,
    redelivered: queued.redelivered,
  };
}

/** Whether a queue holds a message that a consumer takes now. */
export function hasReadyWork(queues: Iterable<MemoryQueue>): boolean {
  for (const queue of queues) if (queue.messages.size > 0 && hasActiveConsumer(queue)) return true;
  return false;
}

/** What each busy queue of `queues` has in hand: its ready messages (when consumed) and in flight. */
export function queueWork(queues: Iterable<MemoryQueue>): QueueWork[] {
  const work: QueueWork[] = [];
  for (const queue of queues) {
    const inFlight = queue.consumers.reduce((sum, consumer) => sum + consumer.inFlight, 0);
    const ready = hasActiveConsumer(queue) ? queue.messages.size : 0;
    if (inFlight > 0 || ready > 0) work.push({ queue: queue.name, ready, inFlight });
  }
  return work;
}
