import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { type CustomTransportStrategy, type MessageHandler, Server } from '@nestjs/microservices';
import { isObservable, lastValueFrom } from 'rxjs';
import type {
  BackendEvents,
  BackendStatus,
  BackendSubscription,
  BrokerBackend,
  Delivery,
  MessageHeaders,
  OutgoingReply,
  Settlement,
} from '../backend/broker-backend.interface';
import { isExpiredRequest, MessagingHeaders } from '../backend/message-headers';
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
import { describeFailure } from '../errors/failure';
import { classifyFailure, decideSettlement } from '../retry/retry-policy';
import { buildRoutes, describeRoute, type Route } from './route';
import { type ConsumeOutcome, MessagingInstruments } from '../observability/messaging-metrics';
import { MessagingTracer } from '../observability/messaging-tracer';

const ACK: Settlement = Object.freeze({ action: 'ack' });
/** The headers of a reply with none of its own (shared: amqplib makes a prototype of each object). */
const NO_REPLY_HEADERS: MessageHeaders = Object.freeze({});

/** How `consumed_total` counts a settlement, when metrics are on. */
interface Outcome {
  value: ConsumeOutcome;
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
  private readonly inbox: Inbox;
  private readonly instruments: MessagingInstruments;
  private readonly tracer: MessagingTracer;
  /** Routes by queue, once started: which handler consumes which queue (for health). */
  private started: readonly Route[] = [];

  constructor(
    @Inject(MESSAGING_OPTIONS) private readonly options: ResolvedMessagingOptions,
    @Inject(MESSAGING_BACKEND) private readonly backend: BrokerBackend,
    private readonly codec: MessageCodec,
    @Inject(MESSAGING_STORE) store: MessageStore,
    @Optional() instruments?: MessagingInstruments,
    @Optional() tracer?: MessagingTracer,
  ) {
    super();
    this.instruments = instruments ?? new MessagingInstruments(undefined);
    this.tracer = tracer ?? new MessagingTracer(backend.name);
    this.inbox = new Inbox(store, backend, options.service, options.inbox.ttlMs, instruments);
    this._status$.next(backend.status);
    this.detachStatus = backend.on('status', (status) => this._status$.next(status));
  }

  /** Each handler and the queue it consumes, once the server started. */
  get handlers(): readonly { readonly handler: string; readonly queue: string }[] {
    return this.started.map((route) => ({ handler: route.name, queue: route.spec.queue }));
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
   * leaves the connection to the module, which closes it on application shutdown.
   */
  async close(): Promise<void> {
    const subscriptions = this.subscriptions;
    this.subscriptions = [];
    await Promise.allSettled(subscriptions.map((s) => s.cancel()));
    if (this.inFlight > 0) {
      this.logger.log(`Waiting for ${this.inFlight} in-flight handler(s) to finish`);
      if (!(await settleWithin(this.whenIdle(), this.options.shutdownTimeoutMs))) {
        this.logger.warn(
          `${this.inFlight} handler(s) still running after shutdownTimeoutMs (${this.options.shutdownTimeoutMs} ms); ` +
            `their messages are not acknowledged and will be redelivered; ctx.signal is aborted`,
        );
        this.stopping.abort(
          new Error(
            `shutdownTimeoutMs (${this.options.shutdownTimeoutMs} ms) passed: stop, the message will be redelivered`,
          ),
        );
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
    const routes = buildRoutes(this.getHandlers(), this.options);
    this.started = routes;
    await this.backend.connect();
    for (const route of routes) {
      const subscription = await this.backend.subscribe(route.spec, (delivery) =>
        this.onDelivery(route, delivery),
      );
      this.subscriptions.push(subscription);
      this.logger.log(describeRoute(route));
    }
  }

  /**
   * Decodes, runs the handler inside Nest's processing hooks (SPEC §2: APM agents hook them, some by
   * replacing `Server.prototype.runWithProcessingHooks` before this file loads, so there is no telling
   * they are unused), and decides the settlement. A request whose caller stopped waiting is
   * acknowledged without running: nobody would read its reply. Never rejects.
   */
  private onDelivery(route: Route, delivery: Delivery): Promise<Settlement> {
    return this.instruments.enabled ? this.measured(route, delivery) : this.settle(route, delivery);
  }

  /** {@link settle}, counted and timed for the metrics. */
  private async measured(route: Route, delivery: Delivery): Promise<Settlement> {
    const instruments = this.instruments;
    const started = performance.now();
    const outcome: Outcome = { value: 'ack' };
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
  private async settle(route: Route, delivery: Delivery, outcome?: Outcome): Promise<Settlement> {
    this.inFlight++;
    // Its turn among the route's `concurrency` handlers (at once, unless a second source is busy).
    const slot = route.slots.take();
    if (slot) await slot;
    try {
      if (delivery.replyTo !== undefined && isExpiredRequest(delivery.headers, Date.now())) {
        this.logger.debug(
          `${route.name} skipped request ${describeDelivery(delivery)}: its caller stopped waiting`,
        );
        if (outcome) outcome.value = 'expired';
        return ACK;
      }
      const ctx = new MessageContext(delivery, this.options.service, this.stopping.signal);
      const payload = this.codec.decode(delivery);
      let result: unknown;
      if (route.idempotent) {
        // The handler runs inside the inbox's transaction: once per message id.
        const once = await this.inbox.once(route.name, delivery.messageId, () =>
          this.run(route, delivery, ctx, payload),
        );
        if (once.duplicate) {
          if (outcome) outcome.value = 'duplicate';
          return this.duplicate(route, delivery);
        }
        result = once.result;
      } else {
        result = await this.run(route, delivery, ctx, payload);
      }
      return delivery.replyTo === undefined
        ? ACK
        : { action: 'ack', reply: this.encodeReply(result) };
    } catch (thrown) {
      // A body that cannot be decoded (MalformedMessageError) or whatever the handler threw.
      const settlement = this.fail(route, delivery, thrown);
      if (outcome) {
        outcome.value =
          settlement.action !== 'ack'
            ? settlement.action
            : delivery.replyTo !== undefined
              ? 'error-reply'
              : 'dropped';
      }
      return settlement;
    } finally {
      route.slots.release();
      if (--this.inFlight === 0 && this.idle) {
        this.idle.resolve();
        this.idle = undefined;
      }
    }
  }

  /**
   * Runs the handler in the delivery's trace (a span, `currentMessage()`) when there is one to
   * keep, else as it is: a delivery nobody traces pays for neither.
   */
  private run(route: Route, delivery: Delivery, ctx: MessageContext, payload: unknown) {
    if (!this.tracer.handling) return this.runInProcessingHooks(ctx, route.handler, payload);
    return this.tracer.handle(delivery, route.name, this.options.service, () =>
      this.runInProcessingHooks(ctx, route.handler, payload),
    );
  }

  /** A message the inbox says this route handled already: acknowledged without running. */
  private duplicate(route: Route, delivery: Delivery): Settlement {
    this.logger.debug(
      `${route.name} skipped ${describeDelivery(delivery)}: handled already (inbox)`,
    );
    if (delivery.replyTo === undefined) return ACK;
    const error = new Error(
      `message ${delivery.messageId} was handled already by idempotent ${route.name}; its reply is not kept`,
    );
    return { action: 'ack', reply: this.encodeErrorReply(error, new Date()) };
  }

  /**
   * Runs `handler` between Nest's processing start and end hooks and resolves with its result: the
   * value of the promise Nest's handler proxy returns or, from an interceptor or a handler that returns
   * one, the last value of an Observable.
   */
  private runInProcessingHooks(
    ctx: MessageContext,
    handler: MessageHandler,
    payload: unknown,
  ): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const started = this.runWithProcessingHooks(ctx, (runEndHook) => {
        const done = (result: unknown): void => {
          runEndHook();
          resolve(result);
        };
        const failed = (error: unknown): void => {
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
      if (started instanceof Promise) started.catch(reject);
    });
  }

  private fail(route: Route, delivery: Delivery, error: unknown): Settlement {
    try {
      return delivery.replyTo === undefined
        ? this.failEvent(route, delivery, error)
        : this.failRequest(route, delivery, error);
    } catch (unexpected) {
      // Deciding must never reject (the delivery would stay unsettled): keep the message for a human.
      const failure = describeFailure(unexpected, 'handler-error', new Date());
      this.logger.error(
        `${route.name} could not settle ${describeDelivery(delivery)}: ${failure.message}`,
      );
      return { action: 'dead-letter', failure };
    }
  }

  private failEvent(route: Route, delivery: Delivery, error: unknown): Settlement {
    const settlement = decideSettlement({
      attempt: delivery.attempt,
      error,
      retry: route.retry,
      deadLetter: route.deadLetter,
      now: new Date(),
      random: Math.random(),
    });
    this.logSettlement(route, delivery, settlement, error);
    return settlement;
  }

  /**
   * A request is never retried: its caller is waiting and gets the error instead. Like an event, it
   * goes to the dead-letter queue when retrying could not help (unrecoverable, invalid, malformed).
   */
  private failRequest(route: Route, delivery: Delivery, error: unknown): Settlement {
    const now = new Date();
    const reason = classifyFailure(error);
    const failure = describeFailure(error, reason, now);
    const reply = this.encodeErrorReply(error, now);
    this.logger.warn(
      `${route.name} failed request ${describeDelivery(delivery)}: ${failure.message}`,
    );
    return reason !== 'handler-error' && route.deadLetter
      ? { action: 'dead-letter', failure, reply }
      : { action: 'ack', reply };
  }

  private logSettlement(
    route: Route,
    delivery: Delivery,
    settlement: Settlement,
    error: unknown,
  ): void {
    const id = `${route.name} ${describeDelivery(delivery)}`;
    if (settlement.action === 'retry') {
      this.logger.warn(
        `${id} failed: ${settlement.failure.message}; retrying in ${settlement.delayMs} ms`,
      );
    } else if (settlement.action === 'dead-letter') {
      this.logger.error(
        `${id} dead-lettered (${settlement.failure.reason}): ${settlement.failure.message}`,
      );
    } else {
      this.logger.error(
        `${id} failed and was dropped (deadLetter is off): ${describeFailure(error, 'handler-error', new Date()).message}`,
      );
    }
  }

  private encodeReply(result: unknown): OutgoingReply {
    try {
      const encoded = this.codec.encode(result);
      return {
        body: encoded.body,
        contentType: encoded.contentType,
        headers: encoded.headers ?? NO_REPLY_HEADERS,
      };
    } catch (error) {
      return this.encodeErrorReply(error, new Date());
    }
  }

  private encodeErrorReply(error: unknown, now: Date): OutgoingReply {
    const failure = describeFailure(error, classifyFailure(error), now);
    const body = Buffer.from(
      JSON.stringify({ message: failure.message, errorClass: failure.errorClass }),
    );
    return {
      body,
      contentType: 'application/json',
      headers: { [MessagingHeaders.REPLY_ERROR]: failure.errorClass },
    };
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
