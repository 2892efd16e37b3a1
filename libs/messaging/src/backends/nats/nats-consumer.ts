/**
 * One subscription on JetStream: the route's durable pull consumers (one per NATS filter of its
 * topics, one for its queue subject), pulled only for free handler slots so that at most
 * `spec.concurrency` deliveries are in flight in this process, and the settlement of each delivery
 * (reply, retry copy, dead letter, then ack). Deliveries are kept alive while they wait or run.
 * Pulls that fail (lost connection, consumer or stream deleted) are retried with backoff, the
 * consumer re-declared when it is gone.
 */
import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type {
  ConsumerState,
  Delivery,
  DeliveryHandler,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { describeDelivery } from '../../backend/describe-delivery';
import { MessageFifo } from '../../backend/message-fifo';
import { topicMatches } from '../../backend/topic-matcher';
import { describe } from './nats-connection';
import { PULL_EXPIRES_MS } from './nats-delayer';
import { toDelivery } from './nats-messages';
import { NatsPauses } from './nats-pauses';
import { NatsSettler, type NatsSettlerContext } from './nats-settler';
import {
  describeRoute,
  ensureDurable,
  ensureStreams,
  isNotFound,
  queueConsumerName,
  routeFilters,
  subjectMatches,
} from './nats-topology';

/** What a consumer needs from its backend. */
export type NatsConsumerContext = NatsSettlerContext;

/** One durable consumer of the route and its pull loop. */
interface Puller {
  readonly name: string;
  /** Absolute filter subject. */
  readonly filter: string;
  /** Topic patterns it serves; undefined for the queue consumer. */
  readonly patterns?: readonly string[];
  readonly description: string;
  consumer?: Consumer;
  iter?: ConsumerMessages;
  attached: boolean;
}

/** Handler slots of a subscription whose `concurrency` is not a positive number. */
const DEFAULT_SLOTS = 10;

/** `max_ack_pending` per slot: room for many instances and for the pulls of several filters. */
const ACK_PENDING_PER_SLOT = 32;

export class NatsConsumer {
  private readonly pullers: Puller[];
  private stopped = false;
  private inFlight = 0;
  private readonly waiting = new MessageFifo<JsMsg>();
  /** Deliveries held by this process (waiting or handled): kept alive until settled. */
  private readonly held = new Set<JsMsg>();
  private readonly slotWaiters: Array<() => void> = [];
  private readonly idleWaiters: Array<() => void> = [];
  /** Backoff pauses of the pull loops: ended by `cancel()`. */
  private readonly pauses = new NatsPauses();
  private keepAlive?: NodeJS.Timeout;
  private detachedSince?: number = Date.now();
  private readonly settler: NatsSettler;
  private copyFailures = 0;
  /** Counts reconnections: a pull made before the latest one is renewed. */
  private generation = 0;

  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly handler: DeliveryHandler,
    private readonly ctx: NatsConsumerContext,
  ) {
    this.settler = new NatsSettler(spec, ctx);
    const { names } = ctx;
    const topics = spec.external ? [] : spec.topics;
    this.pullers = [
      ...routeFilters(names, spec.queue, topics).map((f) => ({
        ...f,
        description: describeRoute({ queue: spec.queue, patterns: f.patterns }),
        attached: false,
      })),
      {
        name: queueConsumerName(spec.queue),
        filter: names.queueSubject(spec.queue),
        description: describeRoute({ queue: spec.queue }),
        attached: false,
      },
    ];
  }

  /** The routes (patterns) this subscription declares, for the unroutable check. */
  get routes(): Array<{ queue: string; patterns?: readonly string[] }> {
    return this.pullers.map((p) => ({ queue: this.spec.queue, patterns: p.patterns }));
  }

  /** Declares the durable consumers and starts pulling; rejects on a declaration error. */
  async start(): Promise<void> {
    await this.declare();
    const every = Math.max(250, Math.floor(this.ctx.options.ackWaitMs / 3));
    this.keepAlive = setInterval(() => {
      for (const msg of this.held) quietly(() => msg.working());
    }, every);
    this.keepAlive.unref();
    for (const p of this.pullers) void this.pullLoop(p);
  }

  /** Stops pulling: waiting deliveries go back to the server; in-flight ones still settle. */
  async cancel(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const p of this.pullers) p.iter?.stop();
    for (const wake of this.slotWaiters.splice(0)) wake();
    this.pauses.wakeAll();
    for (let msg = this.waiting.shift(); msg; msg = this.waiting.shift()) {
      this.held.delete(msg);
      quietly(() => msg.nak());
    }
    // The pull loops end by themselves (a request in flight may take its timeout): not awaited, so
    // a cancel during a reconnection is not held up; what they still receive is handed back.
    this.detachedSince ??= Date.now();
  }

  /** Waits for in-flight deliveries to settle, at most `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.idleWaiters.push(resolve);
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
    }
    clearInterval(this.keepAlive);
  }

  /** After a reconnect: renew every pull (the server may have dropped the old ones). */
  reconnected(): void {
    this.generation++;
    for (const p of this.pullers) p.iter?.stop();
  }

  get state(): ConsumerState {
    return {
      queue: this.spec.queue,
      attached: this.detachedSince === undefined,
      detachedSince: this.detachedSince,
    };
  }

  private async declare(): Promise<void> {
    const { jsm } = await this.ctx.link();
    const concurrency = this.slots;
    for (const p of this.pullers) {
      await ensureDurable(jsm, {
        stream: this.ctx.names.messages,
        name: p.name,
        filter: p.filter,
        description: p.description,
        maxAckPending: concurrency * ACK_PENDING_PER_SLOT,
        // Unlimited: this consumer dead-letters past `deliveryLimit` itself, and a delivery whose
        // dead letter could not be written must come again (a server-side limit would strand it).
        maxDeliver: -1,
        ackWaitMs: this.ctx.options.ackWaitMs,
        deliverPolicy: 'new',
      });
    }
  }

  /** Handler slots: `spec.concurrency`, or 10 when it is not a positive number. */
  private get slots(): number {
    return this.spec.concurrency >= 1 ? Math.floor(this.spec.concurrency) : DEFAULT_SLOTS;
  }

  /** The stream or consumer was deleted under us: create them again (errors: the next pull says). */
  private async redeclare(): Promise<void> {
    try {
      const { jsm } = await this.ctx.link();
      await ensureStreams(jsm, this.ctx.options);
      await this.declare();
    } catch {
      // Reported by the next failing pull.
    }
  }

  private get free(): number {
    return this.slots - this.inFlight - this.waiting.size;
  }

  private async pullLoop(p: Puller): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      const free = this.free;
      if (free <= 0) {
        await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
        continue;
      }
      try {
        const { js } = await this.ctx.link();
        p.consumer ??= await js.consumers.get(this.ctx.names.messages, p.name);
        if (this.stopped) break;
        const generation = this.generation;
        const iter = await p.consumer.fetch({ max_messages: free, expires: PULL_EXPIRES_MS });
        p.iter = iter;
        // Cancelled, or reconnected (the pull may have been lost on the wire), while it was made.
        if (this.stopped || generation !== this.generation) iter.stop();
        this.setAttached(p, true);
        for await (const msg of iter) this.accept(p, msg);
        failures = 0;
      } catch (error) {
        p.consumer = undefined;
        this.setAttached(p, false);
        if (this.stopped) break;
        // Once per streak of failures: a reconnection must not flood the log.
        if (failures === 0)
          this.ctx.hub.emitError(
            new Error(
              `NATS consumer of queue '${this.spec.queue}': ${describe(error)}; pulling again`,
            ),
          );
        if (isNotFound(error)) await this.redeclare();
        await this.pauses.pause(Math.min(200 * 2 ** failures++, 5_000));
      } finally {
        p.iter = undefined;
      }
    }
  }

  private setAttached(p: Puller, attached: boolean): void {
    p.attached = attached;
    if (this.pullers.every((x) => x.attached)) this.detachedSince = undefined;
    else this.detachedSince ??= Date.now();
  }

  /** A message pulled by `p`: handled now, queued for a slot, or acked unhandled when not ours. */
  private accept(p: Puller, msg: JsMsg): void {
    if (this.stopped) {
      quietly(() => msg.nak());
      return;
    }
    if (p.patterns && !this.handles(p, msg.subject)) {
      quietly(() => msg.ack());
      return;
    }
    this.held.add(msg);
    if (this.waiting.size === 0 && this.inFlight < this.slots) void this.handle(msg);
    else this.waiting.push(msg);
  }

  /**
   * Whether `p` handles a message on `subject`: one of its patterns matches the topic (its filter may
   * be wider), and no earlier filter of the route, which received it too, handles it.
   */
  private handles(p: Puller, subject: string): boolean {
    const topic = subject.slice(this.ctx.names.topicPrefix.length);
    const ours = (x: Puller): boolean =>
      (x.patterns ?? []).some((pattern) => topicMatches(pattern, topic));
    if (!ours(p)) return false;
    for (const earlier of this.pullers) {
      if (earlier === p) return true;
      if (subjectMatches(earlier.filter, subject) && ours(earlier)) return false;
    }
    return true;
  }

  private async handle(msg: JsMsg): Promise<void> {
    this.inFlight++;
    this.held.add(msg);
    try {
      await this.process(msg);
    } catch (error) {
      this.ctx.hub.emitError(
        new Error(`settling a delivery of '${this.spec.queue}': ${describe(error)}`),
      );
    } finally {
      this.held.delete(msg);
      this.inFlight--;
      const next = this.stopped ? undefined : this.waiting.shift();
      if (next) void this.handle(next);
      else for (const wake of this.slotWaiters.splice(0)) wake();
      if (this.inFlight === 0) for (const idle of this.idleWaiters.splice(0)) idle();
    }
  }

  private async process(msg: JsMsg): Promise<void> {
    const delivery = this.settler.trustedReplyTo(toDelivery(msg, this.spec.queue, this.ctx.names));
    const deliveries = msg.info.deliveryCount;
    if (deliveries > this.ctx.options.deliveryLimit) {
      // Delivered that often without being settled: it crashes its consumers. Park it.
      await this.settleCopy(msg, delivery, {
        action: 'dead-letter',
        failure: {
          reason: 'delivery-limit',
          message: `delivered ${deliveries} times without being settled (deliveryLimit ${this.ctx.options.deliveryLimit})`,
          errorClass: 'DeliveryLimitExceeded',
          at: new Date(),
        },
      });
      return;
    }
    let settlement: Settlement;
    try {
      settlement = await this.handler(delivery);
    } catch (error) {
      this.ctx.hub.emitError(
        new Error(
          `handler of '${this.spec.queue}' rejected ${describeDelivery(delivery)}: ${describe(error)}`,
        ),
      );
      quietly(() => msg.nak(1_000));
      return;
    }
    if (settlement.action === 'ack') {
      await this.ack(msg);
      if (settlement.reply) this.settler.sendReply(delivery, settlement.reply);
      return;
    }
    await this.settleCopy(msg, delivery, settlement);
  }

  /** Writes the retry copy or dead letter, then acks; requeues after a pause when it cannot. */
  private async settleCopy(
    msg: JsMsg,
    delivery: Delivery,
    settlement: Exclude<Settlement, { action: 'ack' }>,
  ): Promise<void> {
    try {
      // Message ids from the route and the stored message's sequence: the copy of a redelivery (a
      // crash between the copy and the ack) is a duplicate the stream drops; a replayed message is a
      // new one. The route is part of it: with fan-out, several routes fail the same stored message,
      // and each one's copy must be stored.
      const origin = `${this.ctx.names.messages}:${this.spec.queue}:${msg.seq}`;
      if (settlement.action === 'retry')
        await this.settler.publishRetry(delivery, settlement, origin);
      else await this.settler.publishDeadLetter(delivery, settlement, origin);
      this.copyFailures = 0;
    } catch (error) {
      const delayMs = Math.min(500 * 2 ** this.copyFailures++, 30_000);
      this.ctx.hub.emitError(
        new Error(
          `could not ${settlement.action} ${describeDelivery(delivery)} of '${this.spec.queue}': ` +
            `${describe(error)}; redelivering it in ${delayMs} ms`,
        ),
      );
      quietly(() => msg.nak(delayMs));
      return;
    }
    await this.ack(msg);
    if (settlement.action === 'dead-letter' && settlement.reply)
      this.settler.sendReply(delivery, settlement.reply);
  }

  private async ack(msg: JsMsg): Promise<void> {
    try {
      // Closed meanwhile (close timed out on this handler): the server redelivers it instead.
      await this.ctx.link();
      await msg.ackAck({ timeout: this.ctx.options.publishTimeoutMs });
    } catch (error) {
      this.ctx.logger.debug(
        `The ack of a delivery of '${this.spec.queue}' was not confirmed (${describe(error)}); it may be redelivered`,
      );
    }
  }
}

/** Runs an ack, nak or keep-alive; on a closed connection it cannot be sent, and the server redelivers. */
function quietly(send: () => void): void {
  try {
    send();
  } catch {
    // The connection is gone: the delivery comes back after the ack wait.
  }
}
