/**
 * One subscription on JetStream: the route's durable pull consumers (one per NATS filter of its
 * topics, one for its queue subject), pulled together for no more than the free handler slots so
 * that at most `spec.concurrency` deliveries are held by this process (`nats-pull.ts`,
 * `nats-pull-budget.ts`), its volatile requests (`nats-responder.ts`), and the settlement of each
 * delivery (reply, retry copy, dead letter, then ack). Deliveries are kept alive while they run.
 * Acks are plain (batched into one write per turn of the event loop) unless `confirmAcks` asks for
 * the server's confirmation. An exclusive subscription pulls only while its instance holds the
 * queue's lease, with a short ack wait so that a crashed holder's deliveries are due again, first,
 * before the lease passes on (`nats-lease.ts`).
 */
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { EXCLUSIVE_ACK_WAIT_MS, natsLease } from './nats-lease';
import { LeaseKeeper } from '../../backend/lease-keeper';
import { TimedWaits } from '../../backend/timed-waits';
import type {
  ConsumerState,
  DeliveryHandler,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { describe } from './nats-connection';
import { NatsDeliveryRunner, quietly } from './nats-delivery-runner';
import { NatsPuller, type PullOwner, ROTATE_MS } from './nats-pull';
import { NatsPullBudget } from './nats-pull-budget';
import type { PulledMessage } from './nats-pulled-message';
import { NatsResponder } from './nats-responder';
import { handlingFilter } from './nats-routes';
import { NatsSettler, type NatsSettlerContext } from './nats-settler';
import { ensureDurable, ensureStreams, isNotFound } from './nats-declarations';
import { describeRoute, queueConsumerName, routeFilters } from './nats-topology';

/** What a consumer needs from its backend. */
export interface NatsConsumerContext extends NatsSettlerContext {
  /** A fresh inbox subject. */
  inbox(): string;
  /** Whether the backend is closing (its subscriptions are about to stop). */
  closing(): boolean;
}

/** Handler slots of a subscription whose `concurrency` is not a positive number. */
const DEFAULT_SLOTS = 10;

/** `max_ack_pending` per slot: room for many instances (each holds at most its slots). */
const ACK_PENDING_PER_SLOT = 32;

/** Longest wait for the check of a consumer whose pulls failed (a lost check is tried again). */
export const RECOVER_CHECK_MS = 3_000;

export class NatsConsumer implements PullOwner {
  readonly slots: number;
  private readonly pullers: NatsPuller[];
  private readonly budget: NatsPullBudget;
  /** The connection the pulls and request subscriptions are on. */
  private nc?: NatsConnection;
  private readonly responder?: NatsResponder;
  private stopped = false;
  private inFlight = 0;
  /** Deliveries being handled: kept alive until settled. */
  private readonly held = new Set<PulledMessage>();
  /** Every `drain()` waiting for `inFlight` to reach 0. */
  private readonly idleWaiters = new TimedWaits();
  /** Backoff pauses of the pullers: ended by `cancel()`. */
  private readonly pauses = new TimedWaits(true);
  private keepAlive?: NodeJS.Timeout;
  /** Turns of the pull budget and the pullers' heartbeat checks. */
  private ticker?: NodeJS.Timeout;
  private detachedSince?: number = Date.now();
  /** Pullers whose pulls fail now: reported once per streak. */
  private readonly failing = new Set<NatsPuller>();
  private readonly runner: NatsDeliveryRunner;
  /**
   * One topic filter, equal to the patterns (no `#`): what it receives is exactly what they match,
   * and no other filter of the route receives it too.
   */
  private readonly exact: boolean;
  /** An exclusive subscription's lease (`nats-lease.ts`): it pulls only while it holds it. */
  private readonly lease?: LeaseKeeper;
  /** The ack wait of its durable consumers. */
  private readonly ackWaitMs: number;
  /** What an exclusive subscription that stopped gives back, kept alive until {@link drain}. */
  private readonly givenBack: PulledMessage[] = [];

  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly handler: DeliveryHandler,
    private readonly ctx: NatsConsumerContext,
  ) {
    this.slots = spec.concurrency >= 1 ? Math.floor(spec.concurrency) : DEFAULT_SLOTS;
    const settler = new NatsSettler(spec, ctx);
    this.runner = new NatsDeliveryRunner(spec, handler, ctx, settler, (msg) => this.keep(msg));
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
    this.budget = new NatsPullBudget(this.pullers, this.slots);
    this.ackWaitMs = ctx.options.ackWaitMs;
    if (spec.exclusive) {
      const store = natsLease(ctx, ctx.options, spec.queue, randomUUID());
      this.lease = new LeaseKeeper(store, (e) => this.ctx.hub.emitError(e));
      this.ackWaitMs = Math.min(this.ackWaitMs, EXCLUSIVE_ACK_WAIT_MS);
    }
    if (!spec.external)
      this.responder = new NatsResponder(spec, handler, ctx, settler, filters, this.slots);
  }

  /** The routes (patterns) this subscription declares, for the unroutable check. */
  get routes(): Array<{ queue: string; patterns?: readonly string[] }> {
    return this.pullers.map((p) => ({ queue: this.spec.queue, patterns: p.patterns }));
  }

  /**
   * Declares the durable consumers, subscribes the volatile requests and starts pulling. When it
   * fails after the pulls started, it stops them again before it rejects: a subscription that was
   * refused consumes nothing.
   */
  async start(): Promise<void> {
    await this.declare();
    const { nc } = await this.ctx.link();
    try {
      this.nc = nc;
      await this.lease?.start();
      const every = Math.max(250, Math.floor(this.ackWaitMs / 3));
      this.keepAlive = setInterval(() => {
        for (const msg of this.held) quietly(() => msg.working());
        for (const msg of this.givenBack) quietly(() => msg.working());
      }, every);
      this.keepAlive.unref();
      this.ticker = setInterval(() => this.tick(), ROTATE_MS / 2);
      this.ticker.unref();
      for (const p of this.pullers) p.start(nc);
      this.responder?.start(nc);
      this.topUp();
      // The server has the subscriptions once this round trip is done: a request sent after
      // subscribe() resolved reaches this route, not "no responders".
      await nc.flush();
    } catch (error) {
      await this.cancel();
      throw error;
    }
  }

  /**
   * Stops pulling and taking requests; resolves once the server has the unsubscribes. Deliveries
   * that arrive meanwhile go back to the server; the requests are answered; in-flight deliveries
   * still settle.
   */
  async cancel(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.lease?.wakeWaiters();
    this.pauses.wakeAll();
    clearInterval(this.ticker);
    this.detachedSince ??= Date.now();
    await Promise.all([...this.pullers.map((p) => p.stop()), this.responder?.cancel()]);
  }

  /** Waits for in-flight deliveries and requests to settle, at most `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    if (this.inFlight > 0) await this.idleWaiters.wait(timeoutMs);
    await this.responder?.drain(Math.max(0, deadline - Date.now()));
    this.runner.flushAcks();
    clearInterval(this.keepAlive);
    if (this.stopped && this.lease) {
      // Handed back together, in stream order, before the lease goes: the next holder gets them
      // first, in that order (JetStream redelivers naked messages in the order of the naks).
      this.givenBack.sort((a, b) => a.seq - b.seq);
      for (const msg of this.givenBack.splice(0)) quietly(() => msg.nak());
      await this.lease.stop();
    }
  }

  /**
   * After a reconnect: every puller gives up its pulls (the server may or may not have kept them)
   * and pulls again on a fresh inbox. After the connection was replaced by a new one: pull and take
   * requests on that one.
   */
  reconnected(): void {
    const nc = this.ctx.current()?.nc;
    if (this.stopped || !nc) return;
    if (nc === this.nc) {
      for (const p of this.pullers) p.renew();
    } else {
      this.nc = nc;
      for (const p of this.pullers) p.start(nc);
      this.responder?.start(nc);
    }
    this.topUp();
  }

  get state(): ConsumerState {
    return {
      queue: this.spec.queue,
      attached: this.detachedSince === undefined,
      detachedSince: this.detachedSince,
    };
  }

  /** Free handler slots. */
  get room(): number {
    return this.slots - this.inFlight;
  }

  /** See {@link PullOwner.topUp}. */
  topUp(): void {
    if (this.mayPull) this.budget.topUp(this.room);
  }

  /** Whether it pulls now: not stopped, and the holder of its lease if exclusive. */
  private get mayPull(): boolean {
    return !this.stopped && (this.lease === undefined || this.lease.held);
  }

  /** See {@link PullOwner.inbox}. */
  inbox(): string {
    return this.ctx.inbox();
  }

  /** See {@link PullOwner.pause}. */
  pause(ms: number): Promise<void> {
    return this.pauses.wait(ms);
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

  /**
   * The stream or a consumer was deleted under us: create them again. The check is bounded
   * ({@link RECOVER_CHECK_MS}): on a cluster electing the consumer's leader it is answered by
   * nobody, and the puller's next try (after its pause) should not wait for the API's timeout.
   */
  async recover(p: NatsPuller): Promise<void> {
    const { jsm } = await this.ctx.link();
    try {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        jsm.consumers.info(this.ctx.names.messages, p.name),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`its check got no answer within ${RECOVER_CHECK_MS} ms`)),
            RECOVER_CHECK_MS,
          );
          timer.unref();
        }),
      ]).finally(() => clearTimeout(timer));
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
        ackWaitMs: this.ackWaitMs,
        deliverPolicy: 'new',
      });
    }
  }

  /**
   * A message pulled by `p`: handled now, or acked unhandled when not ours. One that finds no free
   * slot (from a pull given up, which the budget no longer counts) is handed back at once, for any
   * instance with a free slot, rather than held here.
   */
  accept(p: NatsPuller, msg: PulledMessage, stale: boolean): void {
    if (!this.mayPull) {
      if (!this.keep(msg)) quietly(() => msg.nak());
      return;
    }
    if (p.patterns && !this.handles(p, msg.subject)) {
      this.runner.ackLater(msg);
      // It took no slot: its room goes round again.
      if (!stale) this.topUp();
      return;
    }
    if (this.inFlight >= this.slots) {
      quietly(() => msg.nak());
      return;
    }
    this.held.add(msg);
    this.handle(msg);
  }

  /** Keeps `msg` to hand back in {@link drain} if this is an exclusive subscription that stops. */
  private keep(msg: PulledMessage): boolean {
    if (!this.lease || !(this.stopped || this.ctx.closing())) return false;
    this.givenBack.push(msg);
    return true;
  }

  /** Every half turn: the budget's turn, and the pullers' heartbeat checks. */
  private tick(): void {
    const now = Date.now();
    for (const p of this.pullers) p.check(now);
    // A standby begins to pull here, within half a turn of taking the lease.
    if (this.mayPull) this.budget.turn(this.room, now);
  }

  /** Whether `p` handles a message on `subject`: see {@link handlingFilter}. */
  private handles(p: NatsPuller, subject: string): boolean {
    if (this.exact) return true;
    const { topicPrefix } = this.ctx.names;
    return handlingFilter(this.pullers, topicPrefix, subject.slice(topicPrefix.length)) === p;
  }

  private handle(msg: PulledMessage): void {
    this.inFlight++;
    this.runner.run(msg).then(
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
    this.topUp();
    if (this.inFlight === 0) this.idleWaiters.wakeAll();
  }
}
