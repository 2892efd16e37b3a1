import type {
  DeadLetter,
  IncomingReply,
  OutgoingMessage,
  OutgoingReply,
} from '../../backend/broker-backend.interface';
import { replayHeaders } from '../../backend/message-headers';
import { topicMatches } from '../../backend/topic-matcher';
import { checkOptionsObject } from '../../errors/config-checks';
import { exclusiveMismatch } from '../../backend/exclusive';
import { MessageFifo } from '../../backend/message-fifo';
import { BrokerActivity, type BrokerWork, type IdleOptions } from './broker-activity';
import { type DelayScheduler, resolveScheduler } from './delay-scheduler';
import { MemoryDeadLetters } from './memory-dead-letters';
import { MemoryDispatcher } from './memory-dispatcher';
import {
  giveBack,
  hasActiveConsumer,
  hasReadyWork,
  heldBack,
  type MemoryConsumer,
  type MemoryQueue,
  type QueuedMessage,
  queuedCopy,
  queueWork,
} from './memory-queue';

export type { MemoryConsumer } from './memory-queue';

/** Options of `InMemoryBroker`. */
export interface InMemoryBrokerOptions {
  /**
   * What holds retries and delayed publishes until they are due: a test passes a clock it moves
   * itself (`TestClock` of `nest-messaging/testing`). @default the process's timers, unref'd
   */
  scheduler?: DelayScheduler;
}

/**
 * The state of an in-process broker: queues with topic bindings, competing consumers, delayed
 * redelivery, dead-letter lists per service and reply routing. Backends that share one broker talk
 * to each other, like processes sharing a RabbitMQ. Nothing survives the process (see the README).
 * An exclusive queue (`SubscriptionSpec.exclusive`) delivers to one consumer at a time, in order
 * (`exclusiveOwner` and `giveBack` of `memory-queue.ts`). Queues reach their consumers through
 * `MemoryDispatcher`. Delays run on its `scheduler`, and `whenIdle()` tells a test when it has nothing left to do.
 */
export class InMemoryBroker {
  private static shared?: InMemoryBroker;
  private readonly queues = new Map<string, MemoryQueue>();
  /** The queues each topic routes to, computed on first use and forgotten when a binding changes. */
  private readonly routes = new Map<string, MemoryQueue[]>();
  private readonly deadLetters = new MemoryDeadLetters();
  /** Who receives the replies to `<mailbox>.<token>`, by mailbox (one per requesting backend). */
  private readonly mailboxes = new Map<string, (replyTo: string, reply: IncomingReply) => void>();
  private mailboxCount = 0;
  private readonly activity: BrokerActivity;
  private readonly dispatcher: MemoryDispatcher;

  constructor(options: InMemoryBrokerOptions = {}) {
    checkOptionsObject(options, ['scheduler'], 'new InMemoryBroker()');
    const scheduler = resolveScheduler(options.scheduler, 'new InMemoryBroker()');
    this.activity = new BrokerActivity(scheduler, () => hasReadyWork(this.queues.values()));
    this.dispatcher = new MemoryDispatcher({
      activity: this.activity,
      deadLetters: this.deadLetters,
      sendReply: (replyTo, reply) => this.sendReply(replyTo, reply),
    });
  }

  /** The process-wide broker that `new InMemoryBackend()` connects to by default. */
  static get default(): InMemoryBroker {
    return (InMemoryBroker.shared ??= new InMemoryBroker());
  }

  /**
   * Creates `name` if needed (with a single active consumer when `exclusive`: throws if it exists
   * with the other kind, as RabbitMQ would) and adds `topics` to its bindings.
   */
  declareQueue(name: string, topics: readonly string[], exclusive = false): void {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = {
        name,
        bindings: new Set(),
        messages: new MessageFifo(),
        consumers: [],
        next: 0,
        scheduled: false,
        exclusive: exclusive ? { delivered: 0 } : undefined,
      };
      this.queues.set(name, queue);
    } else if ((queue.exclusive !== undefined) !== exclusive) {
      throw exclusiveMismatch(name, exclusive, 'in this broker');
    }
    for (const topic of topics) queue.bindings.add(topic);
    this.routes.clear();
  }

  /** Number of queues `message` would reach now, for a message routed later (delayed). */
  countRoutes(message: OutgoingMessage): number {
    if (message.queue !== undefined) return this.queues.has(message.queue) ? 1 : 0;
    return this.routesOf(message.topic as string).length;
  }

  /**
   * Flow control, as a broker slows a publisher that outpaces its consumers: resolves when a publisher
   * of `message` may go on, or is undefined when it may at once (see {@link heldBack}).
   */
  backpressure(message: OutgoingMessage): Promise<void> | undefined {
    if (message.queue !== undefined) {
      const queue = this.queues.get(message.queue);
      return queue && heldBack(queue);
    }
    for (const queue of this.routesOf(message.topic as string)) {
      const held = heldBack(queue);
      if (held) return held;
    }
    return undefined;
  }

  /**
   * Routes a published message to every bound queue (or its named queue); returns how many queues
   * it reached, 0 when it was unroutable (and so went nowhere).
   */
  route(message: OutgoingMessage, replyTo?: string): number {
    if (message.queue !== undefined) {
      const queue = this.queues.get(message.queue);
      if (!queue) return 0;
      this.enqueue(queue, queuedCopy(message, message.queue, replyTo));
      return 1;
    }
    const queues = this.routesOf(message.topic as string);
    for (const queue of queues)
      this.enqueue(queue, queuedCopy(message, message.topic as string, replyTo));
    return queues.length;
  }

  /**
   * Routes a volatile request (`BrokerBackend.request()` without `durable`) only to the queues a
   * consumer takes from now, as RabbitMQ routes it to a route's request queue, which lives only while
   * its consumers do; returns how many, 0 when nobody would answer it.
   */
  routeRequest(message: OutgoingMessage, replyTo: string): number {
    if (message.queue !== undefined) return this.route(message, replyTo);
    let reached = 0;
    for (const queue of this.routesOf(message.topic as string)) {
      if (!hasActiveConsumer(queue)) continue;
      this.enqueue(queue, queuedCopy(message, message.topic as string, replyTo));
      reached++;
    }
    return reached;
  }

  /** Routes `message` once `delayMs` passed (a delayed publish), on the broker's scheduler. */
  routeLater(message: OutgoingMessage, delayMs: number): void {
    this.activity.delay(delayMs, () => this.route(message));
  }

  addConsumer(queueName: string, consumer: MemoryConsumer): void {
    const queue = this.queues.get(queueName) as MemoryQueue;
    queue.consumers.push(consumer);
    this.dispatcher.schedule(queue);
  }

  removeConsumer(queueName: string, consumer: MemoryConsumer): void {
    const queue = this.queues.get(queueName);
    if (!queue) return;
    consumer.active = false;
    const index = queue.consumers.indexOf(consumer);
    if (index >= 0) queue.consumers.splice(index, 1);
    // The next consumer of an exclusive queue takes over.
    if (queue.exclusive) this.dispatcher.schedule(queue);
    // What its queue still holds may have no consumer left to move it.
    this.activity.changed();
  }

  /** Puts deliveries a consumer never settled back at the head of their queue, marked redelivered. */
  requeueUnsettled(queueName: string, consumer: MemoryConsumer): void {
    const queue = this.queues.get(queueName);
    if (!queue) return;
    const unsettled = [...consumer.unsettled];
    consumer.unsettled.clear();
    giveBack(queue, unsettled);
    this.dispatcher.schedule(queue);
  }

  /**
   * Opens a mailbox: replies to any address `<mailbox>.<token>` reach `onReply` with that address.
   * Returns the mailbox and its removal.
   */
  openMailbox(
    onReply: (replyTo: string, reply: IncomingReply) => void,
  ): [mailbox: string, close: () => void] {
    const mailbox = `memory.reply.${++this.mailboxCount}`;
    this.mailboxes.set(mailbox, onReply);
    return [mailbox, () => this.mailboxes.delete(mailbox)];
  }

  /** The dead letters of `service` from index `from` up to (not including) `to`, oldest first. */
  listDeadLetters(service: string, from = 0, to = Infinity): DeadLetter[] {
    return this.deadLetters.list(service, from, to);
  }

  /** Removes dead letters matching `select` and sends each back to its queue as a first attempt. */
  replayDeadLetters(service: string, select: (letter: DeadLetter) => boolean): number {
    const taken = this.deadLetters.take(
      service,
      (letter) => this.queues.has(letter.queue) && select(letter),
    );
    for (const letter of taken) {
      const queue = this.queues.get(letter.queue) as MemoryQueue;
      const message: OutgoingMessage = {
        queue: letter.queue,
        body: letter.body,
        headers: replayHeaders(letter) as OutgoingMessage['headers'],
        messageId: letter.messageId,
        correlationId: letter.correlationId,
        contentType: letter.contentType,
        contentEncoding: letter.contentEncoding,
        timestamp: Date.now(),
      };
      this.enqueue(queue, { ...queuedCopy(message, letter.queue), topic: letter.topic });
    }
    return taken.length;
  }

  purgeDeadLetters(service: string): number {
    return this.deadLetters.purge(service);
  }

  /** Deletes the dead letters of `service` that `select` picks; returns their ids, oldest first. */
  purgeDeadLettersWhere(service: string, select: (letter: DeadLetter) => boolean): string[] {
    return this.deadLetters.take(service, select).map((letter) => letter.id);
  }

  /**
   * Resolves once the broker has nothing left to do: no delivery in flight, no message ready in a
   * queue that has a consumer and, unless `includeDelayed` is false, no retry or delayed publish
   * waiting for its time. Told by the broker as work ends, never polled. For tests
   * (`MessagingTestKit.settled()` of `nest-messaging/testing`).
   */
  whenIdle(options?: IdleOptions): Promise<void> {
    return this.activity.whenIdle(options);
  }

  /** What in-flight deliveries wait for changed outside the broker (`IdleOptions.held`): look again. */
  workChanged(): void {
    this.activity.changed();
  }

  /** What the broker has in hand now: what a test that waited too long reports. */
  work(): BrokerWork {
    const queues = queueWork(this.queues.values());
    return { inFlight: this.activity.inFlight, delayed: this.activity.delayed, queues };
  }

  private routesOf(topic: string): MemoryQueue[] {
    let queues = this.routes.get(topic);
    if (!queues) {
      queues = [...this.queues.values()].filter((queue) =>
        [...queue.bindings].some((pattern) => topicMatches(pattern, topic)),
      );
      this.routes.set(topic, queues);
    }
    return queues;
  }

  private enqueue(queue: MemoryQueue, queued: QueuedMessage): void {
    this.dispatcher.enqueue(queue, queued);
  }

  private sendReply(replyTo: string, reply: OutgoingReply): void {
    const mailbox = replyTo.slice(0, replyTo.lastIndexOf('.'));
    this.mailboxes.get(mailbox)?.(replyTo, {
      body: reply.body,
      headers: reply.headers,
      contentType: reply.contentType,
      contentEncoding: reply.contentEncoding,
    });
  }
}
