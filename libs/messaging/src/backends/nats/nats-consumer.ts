/**
 * One subscription on JetStream: the route's durable pull consumers (one per NATS filter of its
 * topics, one for its queue subject), pulled only for free handler slots so that at most
 * `spec.concurrency` deliveries are in flight in this process (`nats-pull.ts`), its volatile
 * requests (`nats-responder.ts`), and the settlement of each delivery (reply, retry copy, dead
 * letter, then ack). Deliveries are kept alive while they wait or run. Acks are plain (batched into
 * one write per turn of the event loop) unless `confirmAcks` asks for the server's confirmation.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type {
  ConsumerState,
  Delivery,
  DeliveryHandler,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { describeDelivery } from '../../backend/describe-delivery';
import { MessageFifo } from '../../backend/message-fifo';
import { describe } from './nats-connection';
import { toDelivery } from './nats-messages';
import { NatsPauses } from './nats-pauses';
import { NatsPuller, PULL_HEARTBEAT_MS, type PullOwner, type PulledMessage } from './nats-pull';
import { NatsResponder } from './nats-responder';
import { handlingFilter } from './nats-routes';
import { NatsSettler, type NatsSettlerContext } from './nats-settler';
import { ensureDurable, ensureStreams, isNotFound } from './nats-declarations';
import { describeRoute, queueConsumerName, routeFilters } from './nats-topology';

/** What a consumer needs from its backend. */
export interface NatsConsumerContext extends NatsSettlerContext {
  /** A fresh inbox subject. */
  inbox(): string;
}

/** Handler slots of a subscription whose `concurrency` is not a positive number. */
const DEFAULT_SLOTS = 10;

/** `max_ack_pending` per slot: room for many instances and for the pulls of several filters. */
const ACK_PENDING_PER_SLOT = 32;

export class NatsConsumer implements PullOwner {
  readonly slots: number;
  private readonly pullers: NatsPuller[];
  /** The connection the pulls and request subscriptions are on. */
  private nc?: NatsConnection;
  private readonly responder?: NatsResponder;
  private stopped = false;
  private inFlight = 0;
  private readonly waiting = new MessageFifo<PulledMessage>();
  /** Deliveries held by this process (waiting or handled): kept alive until settled. */
  private readonly held = new Set<PulledMessage>();
  private readonly idleWaiters: Array<() => void> = [];
  /** Plain acks of this turn of the event loop, sent together. */
  private acks: PulledMessage[] = [];
  /** Backoff pauses of the pullers: ended by `cancel()`. */
  private readonly pauses = new NatsPauses();
  private keepAlive?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  private detachedSince?: number = Date.now();
  /** Pullers whose pulls fail now: reported once per streak. */
  private readonly failing = new Set<NatsPuller>();
  private readonly settler: NatsSettler;
  private copyFailures = 0;
  /**
   * One topic filter, equal to the patterns (no `#`): what it receives is exactly what they match,
   * and no other filter of the route receives it too.
   */
  private readonly exact: boolean;

  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly handler: DeliveryHandler,
    private readonly ctx: NatsConsumerContext,
  ) {
    this.slots = spec.concurrency >= 1 ? Math.floor(spec.concurrency) : DEFAULT_SLOTS;
    this.settler = new NatsSettler(spec, ctx);
    const { names } = ctx;
    const filters = routeFilters(names, spec.queue, spec.external ? [] : spec.topics);
    this.exact = filters.length === 1 && !filters[0].patterns.some((p) => p.includes('#'));
    const puller = (name: string, filter: string, patterns?: readonly string[]) =>
      new NatsPuller(
        name,
        filter,
        patterns,
        describeRoute({ queue: spec.queue, patterns }),
        names.messages,
        this,
      );
    this.pullers = [
      ...filters.map((f) => puller(f.name, f.filter, f.patterns)),
      puller(queueConsumerName(spec.queue), names.queueSubject(spec.queue)),
    ];
    if (!spec.external)
      this.responder = new NatsResponder(spec, handler, ctx, this.settler, filters, this.slots);
  }

  /** The routes (patterns) this subscription declares, for the unroutable check. */
  get routes(): Array<{ queue: string; patterns?: readonly string[] }> {
    return this.pullers.map((p) => ({ queue: this.spec.queue, patterns: p.patterns }));
  }

  /** Declares the durable consumers, subscribes the volatile requests and starts pulling. */
  async start(): Promise<void> {
    await this.declare();
    const { nc } = await this.ctx.link();
    const every = Math.max(250, Math.floor(this.ctx.options.ackWaitMs / 3));
    this.keepAlive = setInterval(() => {
      for (const msg of this.held) quietly(() => msg.working());
    }, every);
    this.keepAlive.unref();
    this.watchdog = setInterval(() => {
      const now = Date.now();
      for (const p of this.pullers) p.check(now);
    }, PULL_HEARTBEAT_MS);
    this.watchdog.unref();
    this.nc = nc;
    for (const p of this.pullers) p.start(nc, this.ctx.inbox());
    this.responder?.start(nc);
    // The server has the subscriptions once this round trip is done: a request sent after
    // subscribe() resolved reaches this route, not "no responders".
    await nc.flush();
  }

  /** Stops pulling: waiting deliveries go back to the server; in-flight ones still settle. */
  async cancel(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const p of this.pullers) p.stop();
    this.pauses.wakeAll();
    clearInterval(this.watchdog);
    for (let msg = this.waiting.shift(); msg; msg = this.waiting.shift()) {
      this.held.delete(msg);
      quietly(() => msg.nak());
    }
    this.detachedSince ??= Date.now();
    await this.responder?.cancel();
  }

  /** Waits for in-flight deliveries and requests to settle, at most `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    if (this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.idleWaiters.push(resolve);
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
    }
    await this.responder?.drain(Math.max(0, deadline - Date.now()));
    this.flushAcks();
    clearInterval(this.keepAlive);
  }

  /**
   * After a reconnect: renew every pull (the server may have dropped the old ones). After the
   * connection was replaced by a new one: pull and take requests on that one.
   */
  reconnected(): void {
    const nc = this.ctx.current()?.nc;
    if (this.stopped || !nc) return;
    if (nc === this.nc) {
      for (const p of this.pullers) p.renew();
      return;
    }
    this.nc = nc;
    for (const p of this.pullers) p.start(nc, this.ctx.inbox());
    this.responder?.start(nc);
  }

  get state(): ConsumerState {
    return {
      queue: this.spec.queue,
      attached: this.detachedSince === undefined,
      detachedSince: this.detachedSince,
    };
  }

  /** Deliveries the route can take now. */
  get room(): number {
    return this.slots - this.inFlight - this.waiting.size;
  }

  /** See {@link PullOwner.pause}. */
  pause(ms: number): Promise<void> {
    return this.pauses.pause(ms);
  }

  /** See {@link PullOwner.pullFailed}. */
  pullFailed(p: NatsPuller, reason: string): void {
    // Once per streak of failures: a reconnection must not flood the log.
    if (!this.failing.has(p) && !this.stopped) {
      this.failing.add(p);
      this.ctx.hub.emitError(
        new Error(`NATS consumer of queue '${this.spec.queue}': ${reason}; pulling again`),
      );
    }
    this.detachedSince ??= Date.now();
  }

  /** See {@link PullOwner.pullAnswered}. */
  pullAnswered(p: NatsPuller): void {
    this.failing.delete(p);
  }

  /** See {@link PullOwner.pullAttached}. */
  pullAttached(): void {
    if (this.pullers.every((x) => x.attached)) this.detachedSince = undefined;
  }

  /** The stream or a consumer was deleted under us: create them again. */
  async recover(p: NatsPuller): Promise<void> {
    const { jsm } = await this.ctx.link();
    try {
      await jsm.consumers.info(this.ctx.names.messages, p.name);
    } catch (error) {
      if (!isNotFound(error)) throw error;
      await ensureStreams(jsm, this.ctx.options);
      await this.declare();
    }
  }

  private async declare(): Promise<void> {
    const { jsm } = await this.ctx.link();
    for (const p of this.pullers) {
      await ensureDurable(jsm, {
        stream: this.ctx.names.messages,
        name: p.name,
        filter: p.filter,
        description: p.description,
        maxAckPending: this.slots * ACK_PENDING_PER_SLOT,
        // Unlimited: this consumer dead-letters past `deliveryLimit` itself, and a delivery whose
        // dead letter could not be written must come again (a server-side limit would strand it).
        maxDeliver: -1,
        ackWaitMs: this.ctx.options.ackWaitMs,
        deliverPolicy: 'new',
      });
    }
  }

  /** A message pulled by `p`: handled now, queued for a slot, or acked unhandled when not ours. */
  accept(p: NatsPuller, msg: PulledMessage): void {
    if (this.stopped) {
      quietly(() => msg.nak());
      return;
    }
    if (p.patterns && !this.handles(p, msg.subject)) {
      this.ackLater(msg);
      return;
    }
    this.held.add(msg);
    if (this.waiting.size === 0 && this.inFlight < this.slots) this.handle(msg);
    else this.waiting.push(msg);
  }

  /** Whether `p` handles a message on `subject`: see {@link handlingFilter}. */
  private handles(p: NatsPuller, subject: string): boolean {
    if (this.exact) return true;
    const { topicPrefix } = this.ctx.names;
    return handlingFilter(this.pullers, topicPrefix, subject.slice(topicPrefix.length)) === p;
  }

  private handle(msg: PulledMessage): void {
    this.inFlight++;
    this.process(msg).then(
      () => this.settled(msg),
      (error: unknown) => {
        this.ctx.hub.emitError(
          new Error(`settling a delivery of '${this.spec.queue}': ${describe(error)}`),
        );
        this.settled(msg);
      },
    );
  }

  private settled(msg: PulledMessage): void {
    this.held.delete(msg);
    this.inFlight--;
    const next = this.stopped ? undefined : this.waiting.shift();
    if (next) this.handle(next);
    else for (const p of this.pullers) p.pull();
    if (this.inFlight === 0) for (const idle of this.idleWaiters.splice(0)) idle();
  }

  private async process(msg: PulledMessage): Promise<void> {
    const delivery = this.settler.trustedReplyTo(toDelivery(msg, this.spec.queue, this.ctx.names));
    const deliveries = msg.deliveryCount;
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
    msg: PulledMessage,
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

  /**
   * Acknowledges a settled delivery (its copies, if any, are stored already). A plain ack is sent
   * with the others of this turn of the event loop; a lost one is a redelivery after the ack wait.
   */
  private async ack(msg: PulledMessage): Promise<void> {
    if (!this.ctx.options.confirmAcks) {
      this.ackLater(msg);
      return;
    }
    try {
      // Closed meanwhile (close timed out on this handler): the server redelivers it instead.
      const { nc } = await this.ctx.link();
      await msg.ackConfirmed(nc, this.ctx.options.publishTimeoutMs);
    } catch (error) {
      this.ctx.logger.debug(
        `The ack of a delivery of '${this.spec.queue}' was not confirmed (${describe(error)}); it may be redelivered`,
      );
    }
  }

  private ackLater(msg: PulledMessage): void {
    if (this.acks.push(msg) === 1) setImmediate(() => this.flushAcks());
  }

  /** Sends the acks of this turn in one write. */
  private flushAcks(): void {
    const acks = this.acks;
    if (acks.length === 0) return;
    this.acks = [];
    for (const msg of acks) quietly(() => msg.ack());
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
