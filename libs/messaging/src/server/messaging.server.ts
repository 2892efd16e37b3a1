import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { type CustomTransportStrategy, type MessageHandler, Server } from '@nestjs/microservices';
import { isObservable, lastValueFrom } from 'rxjs';
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
import { MessageContext } from '../context/message-context';
import {
  MESSAGING_BACKEND,
  MESSAGING_OPTIONS,
  MESSAGING_STORE,
  MESSAGING_TRANSPORT,
} from '../messaging.constants';
import type { MessageStore } from '../store/message-store';
import { Inbox } from '../store/inbox';
import type { ResolvedMessagingOptions } from '../options/messaging-options';
import { MessagingConfigError } from '../errors/messaging.errors';
import { checkConnections, connectionsOf, pickConnection } from './messaging-connection';
import { OrderedDeliveries } from './ordered-deliveries';
import { HandlerBreakers } from './handler-breakers';
import { PauseGates } from './pause-gates';
import type { CircuitState, CircuitVerdict } from '../retry/circuit-breaker';
import { classifyFailure } from '../retry/retry-policy';
import type { FailureReason } from '../errors/failure';
import { BatchConsumer } from './batch-consumer';
import type { BatchContext } from '../context/batch-context';
import { buildRoutes, describeRoute, type Route } from './route';
import { ACK, REQUEUE, Settlements } from './settlements';
import { type ConsumeOutcome, MessagingInstruments } from '../observability/messaging-metrics';
import { MessagingTracer } from '../observability/messaging-tracer';

/** How `consumed_total` counts a settlement, when metrics are on. */
interface Outcome {
  value: ConsumeOutcome;
  /** How a throw is classified (`classifyFailure`), when the handler or decoding threw. */
  threw?: FailureReason;
}

/** What a settled delivery says of its handler's health, for its circuit breaker. */
function verdictOf(outcome: Outcome): CircuitVerdict {
  if (outcome.threw !== undefined) return outcome.threw === 'handler-error' ? 'failed' : 'none';
  return outcome.value === 'ack' ? 'ok' : 'none';
}

/** What the server consumes one connection with. */
interface Consuming {
  readonly options: ResolvedMessagingOptions;
  readonly backend: BrokerBackend;
  readonly codec: MessageCodec;
  readonly settlements: Settlements;
  readonly inbox: Inbox;
  readonly tracer: MessagingTracer;
}

/** A route with the connection it consumes on. */
interface ServedRoute extends Route {
  readonly via: Consuming;
}

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
  private inFlight = 0;
  /** Settles when `inFlight` next reaches 0; shared by every `close()` waiting for it. */
  private idle?: { promise: Promise<void>; resolve: () => void };
  private readonly detachStatus: () => void;
  /** Aborted when handlers outlive `shutdownTimeoutMs`: each handler's `ctx.signal`. */
  private readonly stopping = new AbortController();
  /** Aborted when `close()` starts: ordered handlers' waiting retries go back to the broker. */
  private readonly closing = new AbortController();
  /**
   * The `reject` of each handler run in progress. When `close()` gives up waiting, it rejects them
   * with the abort's reason: their deliveries are handed back to the broker at once (`requeue`),
   * not acknowledged whenever the handler ends, and the backend closes without waiting for them.
   */
  private readonly running = new Set<(reason: unknown) => void>();
  private readonly instruments: MessagingInstruments;
  /** The default connection (the module's own); the others are found when the server starts. */
  private readonly home: Consuming;
  /** Routes by queue, once started: which handler consumes which queue (for health). */
  private started: readonly ServedRoute[] = [];
  private readonly pauses = new PauseGates();
  private readonly breakers: HandlerBreakers;
  private readonly heldListeners = new Set<() => void>();
  /** The consumers of `@Consume({ batch })` routes, once started. */
  private readonly batches: BatchConsumer[] = [];

  constructor(
    @Inject(MESSAGING_OPTIONS) private readonly options: ResolvedMessagingOptions,
    @Inject(MESSAGING_BACKEND) private readonly backend: BrokerBackend,
    private readonly codec: MessageCodec,
    @Inject(MESSAGING_STORE) store: MessageStore,
    @Optional() instruments?: MessagingInstruments,
    @Optional() tracer?: MessagingTracer,
    @Optional() private readonly discovery?: DiscoveryService,
  ) {
    super();
    this.instruments = instruments ?? new MessagingInstruments(undefined);
    const held = (): void => this.heldListeners.forEach((listener) => listener());
    this.breakers = new HandlerBreakers(this.logger, this.instruments, held);
    this.pauses.onWait = held;
    this.home = this.consuming(
      options,
      backend,
      codec,
      store,
      tracer ?? new MessagingTracer(backend.name),
    );
    this._status$.next(backend.status);
    this.detachStatus = backend.on('status', (status) => this._status$.next(status));
  }

  /** Each handler, the queue it consumes and whether it is paused, once the server started. */
  get handlers(): readonly {
    readonly handler: string;
    readonly queue: string;
    /** The connection it consumes on (`'default'` unless `@Consume(..., { connection })`). */
    readonly connection: string;
    readonly paused: boolean;
    /** Its circuit breaker's state, when it has one. */
    readonly circuit?: CircuitState;
    /** Its deliveries held here now, unacknowledged, by a pause or an open circuit. */
    readonly held: number;
  }[] {
    return this.started.map((route) => ({
      handler: route.name,
      queue: route.spec.queue,
      connection: route.connection,
      paused: this.pauses.isPaused(route.name),
      ...(route.breaker ? { circuit: this.breakers.state(route.name) } : {}),
      held: this.pauses.waitingFor(route.name) + this.breakers.waiting(route.name),
    }));
  }

  /**
   * Stops handing new messages to `handler` (`'ClassName.methodName'`; none: every handler, those
   * started later too) without losing or dead-lettering any: its deliveries wait, unacknowledged,
   * for {@link resume} (at most its `concurrency` of them here; the broker keeps the rest), and go
   * back to the broker unhandled if the app closes first. Handlers already running finish.
   */
  pause(handler?: string): void {
    this.checkHandlerName(handler, 'pause');
    this.pauses.pause(handler);
    this.logger.log(
      `Paused ${handler ?? 'every handler'}: new messages wait, unacknowledged, until resume()`,
    );
  }

  /** Hands messages to `handler` (none: every handler) again after {@link pause}. */
  resume(handler?: string): void {
    this.checkHandlerName(handler, 'resume');
    this.pauses.resume(handler);
    this.logger.log(`Resumed ${handler ?? 'every handler'}`);
  }

  /** Once started, a name that is none of this app's handlers is a mistake worth an error. */
  private checkHandlerName(handler: string | undefined, call: string): void {
    if (handler === undefined || this.started.length === 0) return;
    if (this.started.some((route) => route.name === handler)) return;
    throw new MessagingConfigError(
      `MessagingServer.${call}('${handler}'): no handler of this app has that name. Use 'ClassName.methodName', one of: ${this.started.map((r) => r.name).join(', ')}`,
    );
  }

  /** How many deliveries a pause or an open circuit holds now, across handlers. */
  get heldDeliveries(): number {
    let held = 0;
    for (const route of this.started) {
      held += this.pauses.waitingFor(route.name) + this.breakers.waiting(route.name);
    }
    return held;
  }

  /**
   * Calls `listener` each time a delivery starts waiting for a pause or an open circuit (the testing
   * kit's `settled()` counts those as waiting for the test, not for the broker). Returns its removal.
   */
  onHeld(listener: () => void): () => void {
    this.heldListeners.add(listener);
    return () => this.heldListeners.delete(listener);
  }

  /** True once Nest started this server (`app.startAllMicroservices()`). */
  get isListening(): boolean {
    return this.listening;
  }

  /** Connects, subscribes every handler, logs each route once, then calls `callback`. */
  listen(callback: (error?: unknown) => void): void {
    this.listening = true;
    this.start().then(
      () => callback(),
      (error: unknown) => callback(error),
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
    this.pauses.close();
    this.breakers.close();
    this.closing.abort();
    for (const batch of this.batches) batch.close();
    if (this.inFlight > 0) {
      this.logger.log(`Waiting for ${this.inFlight} in-flight handler(s) to finish`);
      if (!(await settleWithin(this.whenIdle(), this.options.shutdownTimeoutMs))) {
        this.logger.warn(
          `${this.inFlight} handler(s) still running after shutdownTimeoutMs (${this.options.shutdownTimeoutMs} ms); ` +
            `their messages go back to the broker unacknowledged and will be redelivered; ctx.signal is aborted`,
        );
        this.stopping.abort(
          new Error(
            `shutdownTimeoutMs (${this.options.shutdownTimeoutMs} ms) passed: stop, the message will be redelivered`,
          ),
        );
        for (const reject of this.running) reject(this.stopping.signal.reason);
        this.running.clear();
      }
    }
    this.detachStatus();
  }

  private whenIdle(): Promise<void> {
    if (!this.idle) {
      let resolve!: () => void;
      const promise = new Promise<void>((done) => (resolve = done));
      this.idle = { promise, resolve };
    }
    return this.idle.promise;
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
    let routes = this.routes();
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
    // pause(name) before the start could not check the name: now it can.
    for (const name of this.pauses.named) this.checkHandlerName(name, 'pause');
    for (const route of routes) {
      if (route.breaker) this.breakers.add(route.name, route.breaker);
      const subscription = await route.via.backend.subscribe(route.spec, this.consumerOf(route));
      this.subscriptions.push(subscription);
      this.logger.log(describeRoute(route));
    }
  }

  /** Every handler's route, each with the connection it consumes on. */
  private routes(): ServedRoute[] {
    const connections = this.discovery ? connectionsOf(this.discovery) : [];
    // Also checked at init; the server may start first (startAllMicroservices before init).
    checkConnections(connections);
    const consuming = new Map<string, Consuming>([[this.options.name, this.home]]);
    const viaOf = (name: string, where: string): Consuming => {
      let via = consuming.get(name);
      if (!via) {
        const c = pickConnection(connections, name, where);
        via = this.consuming(c.options, c.backend, c.codec, c.store, c.tracer);
        consuming.set(name, via);
      }
      return via;
    };
    return buildRoutes(this.getHandlers(), (name, where) => viaOf(name, where).options).map(
      (route) => ({ ...route, via: viaOf(route.connection, route.name) }),
    );
  }

  private consuming(
    options: ResolvedMessagingOptions,
    backend: BrokerBackend,
    codec: MessageCodec,
    store: MessageStore,
    tracer: MessagingTracer,
  ): Consuming {
    const inbox = new Inbox(store, backend, options.service, options.inbox.ttlMs, this.instruments);
    return {
      options,
      backend,
      codec,
      settlements: new Settlements(codec, this.logger),
      inbox,
      tracer,
    };
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
      pauses: this.pauses,
      signal: this.stopping.signal,
      run: (ctx, handler, payloads) => this.runInProcessingHooks(ctx, handler, payloads),
      done: (count) => this.leave(count),
    });
    this.batches.push(batch);
    return (delivery) => {
      this.inFlight++;
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
    this.inFlight++;
    const slot = route.slots.take();
    return slot ? slot.then(() => this.begin(route, delivery)) : this.begin(route, delivery);
  }

  /** With its slot taken: settles `delivery`, unless shutdown stopped waiting for it. */
  private begin(route: ServedRoute, delivery: Delivery): Promise<Settlement> {
    if (this.pauses.active && this.pauses.isPaused(route.name)) {
      return this.held(route, delivery, this.pauses.wait(route.name));
    }
    const ticket = route.breaker && this.breakers.admit(route.name);
    if (route.breaker && !ticket) {
      return this.held(route, delivery, this.breakers.wait(route.name));
    }
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
    if (!ticket) {
      return this.instruments.enabled
        ? this.measured(route, delivery)
        : this.settle(route, delivery);
    }
    const outcome: Outcome = { value: 'ack' };
    const settled = this.instruments.enabled
      ? this.measured(route, delivery, outcome)
      : this.settle(route, delivery, outcome);
    return settled.then((settlement) => {
      this.breakers.record(route.name, ticket, verdictOf(outcome));
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
    this.leave(1);
  }

  /** `count` deliveries are settled. */
  private leave(count: number): void {
    if ((this.inFlight -= count) === 0 && this.idle) {
      this.idle.resolve();
      this.idle = undefined;
    }
  }

  /** {@link settle}, counted and timed for the metrics (from when its handler's turn came). */
  private async measured(
    route: ServedRoute,
    delivery: Delivery,
    outcome: Outcome = { value: 'ack' },
  ): Promise<Settlement> {
    const instruments = this.instruments;
    const started = performance.now();
    instruments.running(route.name, 1);
    try {
      const settlement = await this.settle(route, delivery, outcome);
      const seconds = (performance.now() - started) / 1000;
      const reason = settlement.action === 'dead-letter' ? settlement.failure.reason : undefined;
      instruments.settled(
        { handler: route.name, topic: delivery.topic, redelivered: delivery.redelivered },
        outcome.value,
        seconds,
        reason,
      );
      return settlement;
    } finally {
      instruments.running(route.name, -1);
    }
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
      const ctx = new MessageContext(delivery, via.options.service, this.stopping.signal);
      const payload = via.codec.decode(delivery);
      if (!route.idempotent) {
        return via.settlements.handled(delivery, await this.run(route, delivery, ctx, payload));
      }
      // The handler runs inside the inbox's transaction: once per message id.
      const once = await via.inbox.once(route.name, delivery.messageId, () =>
        this.run(route, delivery, ctx, payload),
      );
      if (!once.duplicate) return via.settlements.handled(delivery, once.result);
      if (outcome) outcome.value = 'duplicate';
      return via.settlements.duplicate(route, delivery);
    } catch (thrown) {
      if (this.stopping.signal.aborted && thrown === this.stopping.signal.reason) {
        // close() gave up on its handler (see `running`): the broker delivers it again.
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

  /**
   * Runs the handler in the delivery's trace (a span, `currentMessage()`) when there is one to
   * keep, else as it is: a delivery nobody traces pays for neither.
   */
  private run(route: ServedRoute, delivery: Delivery, ctx: MessageContext, payload: unknown) {
    const { tracer, options } = route.via;
    if (!tracer.handles(delivery)) return this.runInProcessingHooks(ctx, route.handler, payload);
    return tracer.handle(delivery, route.name, options.service, () =>
      this.runInProcessingHooks(ctx, route.handler, payload),
    );
  }

  /**
   * Runs `handler` between Nest's processing start and end hooks and resolves with its result: the
   * value of the promise Nest's handler proxy returns or, from an interceptor or a handler that returns
   * one, the last value of an Observable.
   */
  private runInProcessingHooks(
    ctx: MessageContext | BatchContext,
    handler: MessageHandler,
    payload: unknown,
  ): Promise<unknown> {
    // Reached only now (after an inbox claim, say) while close() already gave up: not run at all.
    if (this.stopping.signal.aborted) return Promise.reject(this.stopping.signal.reason as Error);
    return new Promise<unknown>((resolve, reject) => {
      this.running.add(reject);
      const started = this.runWithProcessingHooks(ctx, (runEndHook) => {
        const done = (result: unknown): void => {
          this.running.delete(reject);
          runEndHook();
          resolve(result);
        };
        const failed = (error: unknown): void => {
          this.running.delete(reject);
          runEndHook();
          // Whatever was thrown (Nest's filters may turn it into a plain object) goes to the retry policy.
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
          reject(error);
        };
        const onValue = (value: unknown): Promise<void> | void =>
          isObservable(value)
            ? lastValueFrom(value, { defaultValue: undefined }).then(done, failed)
            : done(value);
        try {
          const returned = handler(payload, ctx) as unknown;
          return returned instanceof Promise
            ? returned.then(onValue, failed)
            : Promise.resolve(onValue(returned));
        } catch (error) {
          failed(error);
          return Promise.resolve();
        }
      }) as unknown;
      // A start hook may return the promise of `done`; it only rejects if the hook itself failed.
      if (started instanceof Promise)
        started.catch((error: unknown) => {
          this.running.delete(reject);
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
          reject(error);
        });
    });
  }
}

function settleWithin(promise: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    void promise.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
