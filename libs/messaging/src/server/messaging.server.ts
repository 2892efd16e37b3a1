import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { DiscoveryService, ModulesContainer } from '@nestjs/core';
import { type CustomTransportStrategy, Server } from '@nestjs/microservices';
import type {
  BackendEvents,
  BackendStatus,
  BackendSubscription,
  BrokerBackend,
  Delivery,
  Settlement,
} from '../backend/broker-backend.interface';
import { isExpiredRequest } from '../backend/message-headers';
import { describeDelivery } from '../backend/describe-delivery';
import { MessageCodec } from '../codec/message-codec';
import { idempotencyKey, readCloudEvent } from '../codec/cloud-events';
import { MessageContext } from '../context/message-context';
import {
  MESSAGING_BACKEND,
  MESSAGING_OPTIONS,
  MESSAGING_STORE,
  MESSAGING_TRANSPORT,
} from '../messaging.constants';
import type { MessageStore } from '../store/message-store';
import type { ResolvedMessagingOptions } from '../options/messaging-options';
import { connectionsOf } from './messaging-connection';
import { type Consuming, consumingOf, type ServedRoute, serveRoutes } from './served-routes';
import { OrderedDeliveries } from './ordered-deliveries';
import { HandlerHolds, type ServerHandler } from './handler-holds';
import { classifyFailure } from '../retry/retry-policy';
import { BatchConsumer } from './batch-consumer';
import { describeRoute } from './route';
import { refuseForeignPatterns } from './foreign-patterns';
import { ACK, REQUEUE } from './settlements';
import { InFlight } from './in-flight';
import { HookedRuns } from './hooked-runs';
import { MessagingInstruments } from '../observability/messaging-metrics';
import { measured, type Outcome, verdictOf } from './outcome';
import { MessagingTracer } from '../observability/messaging-tracer';

/**
 * The Nest transport strategy of the library. Claims every `@Consume` handler, subscribes each to its
 * own queue on start, awaits each handler and settles each delivery exactly once (ack, retry after a
 * backoff, or dead-letter) through the backend. Each message runs inside Nest's processing start/end
 * hooks, so APM agents that hook Nest's transports see it.
 *
 * @example
 * const app = await NestFactory.create(AppModule);
 * app.connectMicroservice({ strategy: app.get(MessagingServer) });
 * await app.startAllMicroservices();
 */
@Injectable()
export class MessagingServer
  extends Server<BackendEvents, BackendStatus>
  implements CustomTransportStrategy
{
  override readonly transportId = MESSAGING_TRANSPORT;
  /** Handler failures reach `onDelivery`, which retries or dead-letters them. */
  override readonly propagatesEventHandlerErrors = true;
  protected override readonly logger = new Logger('Messaging');

  private listening = false;
  private subscriptions: BackendSubscription[] = [];
  /** Deliveries being handled; `close()` waits for it to reach 0. */
  private readonly inFlight = new InFlight();
  private readonly detachStatus: () => void;
  /** Aborted when handlers outlive `shutdownTimeoutMs`: each handler's `ctx.signal`. */
  private readonly stopping = new AbortController();
  /** Aborted when `close()` starts: ordered handlers' waiting retries go back to the broker. */
  private readonly closing = new AbortController();
  /**
   * Handler runs between Nest's processing hooks. When `close()` gives up waiting it abandons those
   * still running: their deliveries are handed back to the broker at once (`requeue`), not
   * acknowledged whenever the handler ends, and the backend closes without waiting for them.
   */
  private readonly runs = new HookedRuns(
    (ctx, fn) => this.runWithProcessingHooks(ctx, fn),
    this.stopping.signal,
  );
  private readonly instruments: MessagingInstruments;
  /** The default connection (the module's own); the others are found when the server starts. */
  private readonly home: Consuming;
  /** Routes by queue, once started: which handler consumes which queue (for health). */
  private started: readonly ServedRoute[] = [];
  private readonly holds: HandlerHolds;
  /** The consumers of `@Consume({ batch })` routes, once started. */
  private readonly batches: BatchConsumer[] = [];

  constructor(
    @Inject(MESSAGING_OPTIONS) private readonly options: ResolvedMessagingOptions,
    @Inject(MESSAGING_BACKEND) private readonly backend: BrokerBackend,
    codec: MessageCodec,
    @Inject(MESSAGING_STORE) store: MessageStore,
    @Optional() instruments?: MessagingInstruments,
    @Optional() tracer?: MessagingTracer,
    @Optional() private readonly discovery?: DiscoveryService,
    @Optional() private readonly modules?: ModulesContainer,
  ) {
    super();
    this.instruments = instruments ?? new MessagingInstruments(undefined);
    this.holds = new HandlerHolds(this.logger, this.instruments);
    this.home = consumingOf(
      { options, backend, codec, store, tracer: tracer ?? new MessagingTracer(backend.name) },
      this.logger,
      this.instruments,
    );
    this._status$.next(backend.status);
    this.detachStatus = backend.on('status', (status) => this._status$.next(status));
  }

  /** Each handler, the queue and connection it consumes, and what holds it back, once started. */
  get handlers(): readonly ServerHandler[] {
    return this.started.map((route) => ({
      handler: route.name,
      queue: route.spec.queue,
      topics: route.spec.topics,
      connection: route.connection,
      concurrency: route.slots.limit,
      ...this.holds.of(route.name),
    }));
  }

  /**
   * Stops handing new messages to `handler` (`'ClassName.methodName'`; none: every handler, those
   * started later too) without losing or dead-lettering any: its deliveries wait, unacknowledged,
   * for {@link resume} (at most its `concurrency` of them here; the broker keeps the rest), and go
   * back to the broker unhandled if the app closes first. Handlers already running finish.
   */
  pause(handler?: string): void {
    this.holds.pause(handler);
  }

  /** Hands messages to `handler` (none: every handler) again after {@link pause}. */
  resume(handler?: string): void {
    this.holds.resume(handler);
  }

  /** How many deliveries a pause or an open circuit holds now, across handlers. */
  get heldDeliveries(): number {
    return this.holds.held;
  }

  /**
   * Calls `listener` each time a delivery starts waiting for a pause or an open circuit (the testing
   * kit's `settled()` counts those as waiting for the test, not for the broker). Returns its removal.
   */
  onHeld(listener: () => void): () => void {
    return this.holds.onHeld(listener);
  }

  /** True once Nest started this server (`app.startAllMicroservices()`), unless that start failed. */
  get isListening(): boolean {
    return this.listening;
  }

  /** Refuses pattern handlers it never calls; connects, subscribes and logs each route; calls `callback`. */
  listen(callback: (error?: unknown) => void): void {
    this.listening = true;
    this.start().then(
      () => callback(),
      (error: unknown) => {
        this.listening = false; // a start that failed started nothing: health and the check say so
        callback(error);
      },
    );
  }

  /**
   * Stops taking messages, waits up to `shutdownTimeoutMs` for in-flight handlers to settle, and
   * leaves the connection to the module, which closes it on application shutdown. Handlers still
   * running then get `ctx.signal` aborted and their deliveries go back to the broker at once
   * (`requeue`): whatever they do afterwards is not acknowledged, and nothing waits for them.
   */
  async close(): Promise<void> {
    const subscriptions = this.subscriptions;
    this.subscriptions = [];
    await Promise.allSettled(subscriptions.map((s) => s.cancel()));
    // What waits for a paused handler, or for an ordered handler's key or retry, goes back to the
    // broker now, unhandled.
    this.holds.close();
    this.closing.abort();
    for (const batch of this.batches) batch.close();
    if (this.inFlight.size > 0) {
      this.logger.log(`Waiting for ${this.inFlight.size} in-flight handler(s) to finish`);
      if (!(await this.inFlight.drained(this.options.shutdownTimeoutMs))) {
        this.logger.warn(
          `${this.inFlight.size} handler(s) still running after shutdownTimeoutMs (${this.options.shutdownTimeoutMs} ms); ` +
            `their messages go back to the broker unacknowledged and will be redelivered; ctx.signal is aborted`,
        );
        this.stopping.abort(
          new Error(
            `shutdownTimeoutMs (${this.options.shutdownTimeoutMs} ms) passed: stop, the message will be redelivered`,
          ),
        );
        this.runs.abandon(this.stopping.signal.reason);
      }
    }
    this.detachStatus();
  }

  override on<K extends keyof BackendEvents, C extends BackendEvents[K]>(
    event: K,
    callback: C,
  ): () => void {
    return this.backend.on(event, callback);
  }

  unwrap<T>(): T {
    return this.backend as T;
  }

  private async start(): Promise<void> {
    const controllers = this.discovery?.getControllers() ?? [];
    refuseForeignPatterns(controllers, this, this.modules?.getRpcTargetRegistry());
    const connections = this.discovery ? connectionsOf(this.discovery) : [];
    let routes = serveRoutes(this.getHandlers(), this.home, connections, (c) =>
      consumingOf(c, this.logger, this.instruments),
    );
    for (const via of new Set(routes.map((r) => r.via).concat(this.home))) {
      await via.backend.connect();
    }
    if (!this.options.consumers) {
      this.logger.log(
        routes.length === 0
          ? 'Producer-only (consumers: false)'
          : `Producer-only (consumers: false): ${routes.length} @Consume handler(s) not consumed here: ${routes.map((r) => r.name).join(', ')}`,
      );
      return;
    }
    // A named connection with consumers: false consumes none of its handlers.
    const skipped = routes.filter((r) => r.via !== this.home && !r.via.options.consumers);
    if (skipped.length > 0) {
      this.logger.log(
        `Producer-only connection(s): ${skipped.length} @Consume handler(s) not consumed here: ${skipped.map((r) => `${r.name} (${r.connection})`).join(', ')}`,
      );
      routes = routes.filter((r) => !skipped.includes(r));
    }
    this.started = routes;
    this.holds.started(routes);
    for (const route of routes) {
      const subscription = await route.via.backend.subscribe(route.spec, this.consumerOf(route));
      this.subscriptions.push(subscription);
      this.logger.log(describeRoute(route));
    }
  }

  /** What takes each delivery of `route`: one by one, or into batches (`@Consume({ batch })`). */
  private consumerOf(route: ServedRoute): (delivery: Delivery) => Promise<Settlement> {
    if (!route.batch) {
      const deliver = (delivery: Delivery) => this.onDelivery(route, delivery);
      if (!route.ordered) return deliver;
      const ordered = new OrderedDeliveries(deliver, this.closing.signal);
      return (delivery) => ordered.deliver(delivery);
    }
    const batch = new BatchConsumer(route, route.batch, {
      service: route.via.options.service,
      codec: route.via.codec,
      settlements: route.via.settlements,
      instruments: this.instruments,
      logger: this.logger,
      pauses: this.holds.pauses,
      signal: this.stopping.signal,
      run: (ctx, handler, payloads) => this.runs.run(ctx, handler, payloads),
      done: (count) => this.inFlight.done(count),
    });
    this.batches.push(batch);
    return (delivery) => {
      this.inFlight.add();
      return batch.add(delivery);
    };
  }

  /**
   * Takes the delivery's turn among its route's `concurrency` handlers (at once, unless a second
   * source of the route is busy), then decodes it, runs the handler inside Nest's processing hooks
   * (SPEC §2: APM agents hook them, some by replacing `Server.prototype.runWithProcessingHooks`
   * before this file loads, so there is no telling they are unused), and decides the settlement. A
   * request whose caller stopped waiting is acknowledged without running: nobody would read its
   * reply. Never rejects.
   */
  private onDelivery(route: ServedRoute, delivery: Delivery): Promise<Settlement> {
    this.inFlight.add();
    const slot = route.slots.take();
    return slot ? slot.then(() => this.begin(route, delivery)) : this.begin(route, delivery);
  }

  /** With its slot taken: settles `delivery`, unless shutdown stopped waiting for it. */
  private begin(route: ServedRoute, delivery: Delivery): Promise<Settlement> {
    const { pauses, breakers } = this.holds;
    if (pauses.active && pauses.isPaused(route.name)) {
      return this.held(route, delivery, pauses.wait(route.name));
    }
    const ticket = route.breaker && breakers.admit(route.name);
    if (route.breaker && !ticket) return this.held(route, delivery, breakers.wait(route.name));
    if (route.ordered && this.closing.signal.aborted) {
      // An ordered delivery that waited for a slot: the close hands it back rather than run it.
      this.finished(route);
      return Promise.resolve(REQUEUE);
    }
    if (this.stopping.signal.aborted) {
      // close() gave up waiting (shutdownTimeoutMs) while this one waited for a slot: like a handler
      // still running then, it goes back to the broker unhandled.
      this.finished(route);
      return Promise.resolve(REQUEUE);
    }
    if (!ticket && !this.instruments.enabled) return this.settle(route, delivery);
    const outcome: Outcome = { value: 'ack' };
    const settled = this.instruments.enabled
      ? measured(this.instruments, route.name, delivery, outcome, () =>
          this.settle(route, delivery, outcome),
        )
      : this.settle(route, delivery, outcome);
    if (!ticket) return settled;
    return settled.then((settlement) => {
      breakers.record(route.name, ticket, verdictOf(outcome));
      return settlement;
    });
  }

  /**
   * A delivery of a paused handler, or of one whose circuit is open: waits for `go` (resumed, or
   * time for a trial) and asks again, or goes back to the broker at close.
   */
  private held(route: ServedRoute, delivery: Delivery, go: Promise<boolean>): Promise<Settlement> {
    return go.then((go) => {
      if (go) return this.begin(route, delivery);
      this.finished(route);
      return REQUEUE;
    });
  }

  /** A delivery of `route` is done with its slot. */
  private finished(route: ServedRoute): void {
    route.slots.release();
    this.inFlight.done();
  }

  /** The settlement of `delivery`; `outcome` (with metrics) says how `consumed_total` counts it. */
  private async settle(
    route: ServedRoute,
    delivery: Delivery,
    outcome?: Outcome,
  ): Promise<Settlement> {
    try {
      if (delivery.replyTo !== undefined && isExpiredRequest(delivery.headers, Date.now())) {
        this.logger.debug(
          `${route.name} skipped request ${describeDelivery(delivery)}: its caller stopped waiting`,
        );
        if (outcome) outcome.value = 'expired';
        return ACK;
      }
      const via = route.via;
      // A CloudEvent's handler sees its data and its id (codec/cloud-events.ts).
      const event = readCloudEvent(delivery, via.codec);
      const seen = event?.delivery ?? delivery;
      const ctx = new MessageContext(seen, via.options.service, this.stopping.signal);
      const payload = event ? event.payload : via.codec.decode(delivery);
      if (!route.idempotent) {
        return via.settlements.handled(
          delivery,
          await this.runs.traced(route, delivery, ctx, payload),
        );
      }
      // The handler runs inside the inbox's transaction: once per message id.
      const once = await via.inbox.once(route.name, idempotencyKey(delivery, event), () =>
        this.runs.traced(route, delivery, ctx, payload),
      );
      if (!once.duplicate) return via.settlements.handled(delivery, once.result);
      if (outcome) outcome.value = 'duplicate';
      return via.settlements.duplicate(route, delivery);
    } catch (thrown) {
      if (this.stopping.signal.aborted && thrown === this.stopping.signal.reason) {
        // close() gave up on its handler (HookedRuns.abandon): the broker delivers it again.
        if (outcome) outcome.value = 'requeue';
        return REQUEUE;
      }
      // A body that cannot be decoded (MalformedMessageError) or whatever the handler threw.
      const settlement = route.via.settlements.failed(route, delivery, thrown);
      if (outcome) {
        outcome.threw = classifyFailure(thrown);
        outcome.value =
          settlement.action !== 'ack'
            ? settlement.action
            : delivery.replyTo !== undefined
              ? 'error-reply'
              : 'dropped';
      }
      return settlement;
    } finally {
      this.finished(route);
    }
  }
}
