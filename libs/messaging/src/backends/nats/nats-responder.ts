/**
 * The volatile requests of one route (`request()` without `durable`), over core NATS: no stream,
 * no PubAck, no ack. The route subscribes `<prefix>.rq.<filter>` for each NATS filter of its topics,
 * in the queue group named like the filter's durable consumer (one per route and filter), so the
 * instances of a service share its requests and each service (each route) gets one. A request
 * nobody subscribes to comes back to its sender as "no responders" at once (`UnroutableError`); a
 * request whose caller gave up is skipped by the core (its `x-messaging-deadline` header).
 *
 * Intake is bounded: at most `concurrency` requests are handed to the handler at once (the core
 * runs at most that many of the route's handlers across its sources), at most `maxWaitingRequests`
 * more wait here, in arrival order; a request beyond that is refused at once (the caller gets a
 * `PublishBackpressureError`) rather than held. A filter NATS cannot express exactly (a `#` inside a
 * pattern) receives topics its patterns do not match: such a request is declined, and its sender
 * checks whether a route matches it at all.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type {
  Delivery,
  DeliveryHandler,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { describeDelivery } from '../../backend/describe-delivery';
import { MessageFifo } from '../../backend/message-fifo';
import { TimedWaits } from '../../backend/timed-waits';
import { describe } from './nats-connection';
import { NatsHeaders, Refusal, requestDelivery } from './nats-messages';
import { handlingFilter } from './nats-routes';
import type { NatsSettler, NatsSettlerContext } from './nats-settler';
import type { RouteFilter } from './nats-topology';
import { WireHeaders } from './nats-wire';

export class NatsResponder {
  private readonly subs: Subscription[] = [];
  private running = 0;
  private readonly waiting = new MessageFifo<Msg>();
  private readonly idleWaiters = new TimedWaits(true);
  private stopped = false;
  /** One filter equal to the route's patterns: every request it receives is the route's. */
  private readonly exact: boolean;

  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly handler: DeliveryHandler,
    private readonly ctx: NatsSettlerContext,
    private readonly settler: NatsSettler,
    private readonly filters: readonly RouteFilter[],
    private readonly slots: number,
  ) {
    this.exact = filters.length === 1 && !filters[0].patterns.some((p) => p.includes('#'));
  }

  /** Subscribes the request subjects of the route's filters on `nc` (instead of an old connection). */
  start(nc: NatsConnection): void {
    if (this.stopped) return;
    this.subs.length = 0;
    const { names } = this.ctx;
    for (const f of this.filters) {
      const subject = names.requestSubject(f.filter.slice(names.topicPrefix.length));
      this.subs.push(
        nc.subscribe(subject, {
          queue: f.name,
          callback: (error, msg) => this.receive(f, error, msg),
        }),
      );
    }
  }

  /**
   * Stops taking requests: each subscription is drained, so the requests the server routed here
   * before it had the unsubscribe still arrive, until its answer to the round trip that follows
   * (nats.js drops at once what reaches a subscription that was only unsubscribed). They are all
   * handed to the handler (the core runs them within `concurrency`): a request that reached an
   * instance is answered, and one sent later finds no responder (`UnroutableError` at once).
   */
  async cancel(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // Closed connection: nothing to unsubscribe, and nothing arrives any more.
    await Promise.all(this.subs.splice(0).map((sub) => sub.drain().catch(() => undefined)));
    for (let msg = this.waiting.shift(); msg; msg = this.waiting.shift()) this.run(msg);
  }

  /** Waits for the requests handed over to settle, at most `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.running > 0) await this.idleWaiters.wait(timeoutMs);
  }

  private receive(f: RouteFilter, error: Error | null, msg: Msg): void {
    if (error) {
      this.ctx.hub.emitError(
        new Error(`NATS requests of queue '${this.spec.queue}': ${describe(error)}`),
      );
      return;
    }
    // Not a request (no reply subject): nobody to answer. One that arrives while the route stops
    // was routed here before the server had the unsubscribe: it is handled like the others.
    if (!msg.reply) return;
    if (!this.exact) {
      const topic = msg.subject.slice(this.ctx.names.requestPrefix.length);
      const handler = handlingFilter(this.filters, this.ctx.names.topicPrefix, topic);
      if (handler === undefined) return this.refuse(msg, Refusal.DECLINED, topic);
      // An earlier filter of the route received it too (in its own queue group): handled there.
      if (handler !== f) return;
    }
    if (this.running < this.slots) this.run(msg);
    else if (this.waiting.size < this.ctx.options.maxWaitingRequests) this.waiting.push(msg);
    else this.refuse(msg, Refusal.BUSY);
  }

  /** Answers the sender with a refusal (and the topic it declines), which its requester handles. */
  private refuse(msg: Msg, refusal: string, topic = ''): void {
    try {
      const headers = new WireHeaders().add(NatsHeaders.REFUSAL, refusal);
      msg.respond(Buffer.from(topic), { headers });
    } catch {
      // Closed connection: the caller times out.
    }
  }

  private run(msg: Msg): void {
    this.running++;
    const { names } = this.ctx;
    const delivery = this.settler.trustedReplyTo(
      requestDelivery(msg, msg.subject.slice(names.requestPrefix.length), this.spec.queue),
    );
    this.handler(delivery).then(
      (settlement) => {
        if (settlement.action === 'ack') {
          // The common case, without a promise: reply at once.
          if (settlement.reply) this.settler.sendReply(delivery, settlement.reply);
          this.done();
        } else if (settlement.action === 'requeue') {
          // Core NATS delivered it once and keeps nothing to hand back: the caller times out.
          this.done();
        } else {
          void this.settleCopy(delivery, settlement).finally(() => this.done());
        }
      },
      (error: unknown) => {
        this.ctx.hub.emitError(
          new Error(
            `handler of '${this.spec.queue}' rejected request ${describeDelivery(delivery)}: ${describe(error)}`,
          ),
        );
        this.done();
      },
    );
  }

  private done(): void {
    this.running--;
    if (this.running < this.slots) {
      const next = this.waiting.shift();
      if (next) this.run(next);
    }
    if (this.running === 0) this.idleWaiters.wakeAll();
  }

  /**
   * Carries out a failed request's settlement: the dead letter, stored (PubAck) before the reply is
   * sent (a retry copy, which the core never asks for a request, is stored like an event's). Nothing
   * to acknowledge: core NATS delivered it once.
   */
  private async settleCopy(
    delivery: Delivery,
    settlement: Extract<Settlement, { action: 'retry' | 'dead-letter' }>,
  ): Promise<void> {
    try {
      if (settlement.action === 'retry') await this.settler.publishRetry(delivery, settlement);
      else await this.settler.publishDeadLetter(delivery, settlement);
    } catch (error) {
      this.ctx.hub.emitError(
        new Error(
          `could not ${settlement.action} request ${describeDelivery(delivery)} of '${this.spec.queue}': ` +
            `${describe(error)}; a volatile request is not redelivered`,
        ),
      );
    }
    if (settlement.action === 'dead-letter' && settlement.reply)
      this.settler.sendReply(delivery, settlement.reply);
  }
}
