import type {
  INestApplication,
  LoggerService,
  LogLevel,
  ModuleMetadata,
  Type,
} from '@nestjs/common';
import { Test, type TestingModuleBuilder } from '@nestjs/testing';
import type { BrokerBackend, DeadLetter } from '../backend/broker-backend.interface';
import { topicMatches } from '../backend/topic-matcher';
import type { BrokerWork } from '../backends/memory/broker-activity';
import { InMemoryBroker } from '../backends/memory/in-memory.broker';
import { MessageCodec } from '../codec/message-codec';
import { checkOptionsObject } from '../errors/config-checks';
import { MessagingConfigError, MessagingError } from '../errors/messaging.errors';
import { MESSAGING_BACKEND, MESSAGING_OPTIONS } from '../messaging.constants';
import type { ResolvedMessagingOptions } from '../options/messaging-options';
import {
  MessagingPublisher,
  type PublishOptions,
  type RequestOptions,
} from '../producer/messaging.publisher';
import { MessagingServer } from '../server/messaging.server';
import { KitClock, type MessagingTestClock } from './kit-clock';
import { RecordingBackend } from './recording.backend';
import { TestClock } from './test-clock';
import { type StubHandler, TopicStubs } from './topic-stubs';

/** What the kit hands a metadata factory: the backend to give a module that asks for one. */
export interface TestKitContext {
  /** The kit's backend, on its own broker; it records what the app publishes. */
  readonly backend: BrokerBackend;
  readonly broker: InMemoryBroker;
}

/**
 * The module under test: Nest module metadata (as for `Test.createTestingModule`), or a function of
 * the kit's backend for a module that takes one (`PaymentsModule.register({ backend })`).
 */
export type TestKitMetadata = ModuleMetadata | ((kit: TestKitContext) => ModuleMetadata);

/** Options of `MessagingTestKit.create()`. */
export interface MessagingTestKitOptions {
  /**
   * `manual`: retries and delayed publishes wait for `kit.clock.advance()` or `runAllDelays()`, so
   * a 30 s backoff takes no time. `real`: they take their real time, and `settled()` waits for them.
   * @default 'real'
   */
  clock?: 'real' | 'manual';
  /** How long `settled()` (and each step of the clock) waits before it rejects. @default 5000 */
  settleTimeoutMs?: number;
  /** The app's logger: a `LoggerService`, the levels to print, or `false`. @default false */
  logger?: LoggerService | LogLevel[] | false;
  /** Changes the testing module before it compiles: `(builder) => builder.overrideProvider(...)...` */
  configure?: (builder: TestingModuleBuilder) => TestingModuleBuilder;
}

/** A message the app published (or requested), decoded. */
export interface PublishedMessage<T = any> {
  /** The topic it was published to; undefined for a send to a named queue. */
  readonly topic?: string;
  readonly queue?: string;
  readonly payload: T;
  readonly headers: Readonly<Record<string, unknown>>;
  readonly messageId: string;
  readonly correlationId?: string;
  readonly delayMs?: number;
  /** Sent with `request()`: it expected a reply. */
  readonly isRequest: boolean;
}

/** A dead letter with its body decoded as its handler would have received it. */
export interface DecodedDeadLetter<T = any> extends DeadLetter {
  /** The decoded body, or the raw `Buffer` when it cannot be decoded (a malformed message). */
  readonly payload: T;
}

/** `settled()` waited longer than its timeout: what the broker still had in hand is in the message. */
export class SettleTimeoutError extends MessagingError {
  readonly code = 'SETTLE_TIMEOUT';

  constructor(
    readonly timeoutMs: number,
    /** What the broker had in hand when the wait gave up. */
    readonly work: BrokerWork,
    realTime = true,
  ) {
    super(`settled() timed out after ${timeoutMs} ms: ${describeWork(work, realTime)}`);
  }
}

const DEFAULT_SETTLE_TIMEOUT_MS = 5_000;
const OPTION_KEYS: readonly (keyof MessagingTestKitOptions)[] = [
  'clock',
  'settleTimeoutMs',
  'logger',
  'configure',
];

/**
 * A Nest app on its own in-memory broker, for tests of message handlers: publish, `await
 * kit.settled()` and look at what happened (no sleeps, no polling). Every message the app publishes
 * is recorded, dead letters can be listed, time can be moved by hand for backoff delays, and a topic
 * nobody in the app serves can be stubbed. Needs `@nestjs/testing`.
 *
 * @example
 * const kit = await MessagingTestKit.create(
 *   { imports: [MessagingModule.forRoot({ service: 'payments' })], controllers: [PaymentsController] },
 *   { clock: 'manual' },
 * );
 * await kit.publish('order.created', { orderId: 'o-1', amount: 5 });
 * await kit.clock.runAllDelays(); // every retry ran, at no cost in time
 * expect(kit.publishedTo('payment.succeeded')).toHaveLength(1);
 * await kit.close();
 */
export class MessagingTestKit {
  /** The app under test: initialised, its handlers consuming; not listening on HTTP. */
  readonly app: INestApplication;
  /** The kit's broker: apps on backends of it (`new InMemoryBackend({ broker })`) talk to this one. */
  readonly broker: InMemoryBroker;
  /** Time for backoff delays and delayed publishes. */
  readonly clock: MessagingTestClock;
  /** The app's service name (its consumer group). */
  readonly service: string;
  private readonly backend: RecordingBackend;
  private readonly codec: MessageCodec;
  private readonly stubs: TopicStubs;
  private readonly manualTime: boolean;
  private readonly settleTimeoutMs: number;
  private closed?: Promise<void>;

  private constructor(
    app: INestApplication,
    private readonly server: MessagingServer,
    broker: InMemoryBroker,
    backend: RecordingBackend,
    clock: TestClock | undefined,
    options: MessagingTestKitOptions,
  ) {
    this.app = app;
    this.broker = broker;
    this.backend = backend;
    this.codec = app.get(MessageCodec, { strict: false });
    this.service = app.get<symbol, ResolvedMessagingOptions>(MESSAGING_OPTIONS, {
      strict: false,
    }).service;
    this.stubs = new TopicStubs(broker, this.codec);
    this.manualTime = clock !== undefined;
    this.settleTimeoutMs = options.settleTimeoutMs ?? DEFAULT_SETTLE_TIMEOUT_MS;
    this.clock = new KitClock(clock, broker, () => this.waitIdle(false, this.settleTimeoutMs));
    // A delivery held by a pause or an open circuit waits for the test, not for the broker.
    server.onHeld(() => broker.workChanged());
  }

  /**
   * Compiles `metadata` into a testing module (as `Test.createTestingModule`) with the app's
   * `MessagingModule` backend replaced by the kit's, then starts the app: its `MessagingServer`
   * connected and its handlers subscribed before this resolves.
   */
  static async create(
    metadata: TestKitMetadata,
    options: MessagingTestKitOptions = {},
  ): Promise<MessagingTestKit> {
    checkOptionsObject(options, OPTION_KEYS, 'MessagingTestKit.create()');
    if (options.clock !== undefined && !['real', 'manual'].includes(options.clock)) {
      throw new MessagingConfigError(
        `MessagingTestKit: clock must be 'real' or 'manual', got ${JSON.stringify(options.clock)}`,
      );
    }
    const clock = options.clock === 'manual' ? new TestClock() : undefined;
    const broker = new InMemoryBroker({ scheduler: clock });
    const backend = new RecordingBackend(broker);
    const resolved = typeof metadata === 'function' ? metadata({ backend, broker }) : metadata;
    let builder = Test.createTestingModule(resolved)
      .overrideProvider(MESSAGING_BACKEND)
      .useValue(backend);
    if (options.configure) builder = options.configure(builder);
    const moduleRef = await builder.compile();
    const app = moduleRef.createNestApplication({ logger: options.logger ?? false });
    try {
      let server: MessagingServer;
      try {
        server = app.get(MessagingServer, { strict: false });
      } catch {
        throw new MessagingConfigError(
          'MessagingTestKit: the module under test imports no MessagingModule; add MessagingModule.forRoot({ service }) to its imports',
        );
      }
      app.connectMicroservice({ strategy: server }, { inheritAppConfig: true });
      await app.startAllMicroservices();
      await app.init();
      return new MessagingTestKit(app, server, broker, backend, clock, options);
    } catch (error) {
      await app.close().catch(() => undefined);
      throw error;
    }
  }

  /** A provider of the app (`app.get(token, { strict: false })`). */
  get<T>(token: Type<T> | string | symbol): T {
    return this.app.get<T>(token, { strict: false });
  }

  /** Publishes `payload` to `topic` through the app's publisher; resolves once the broker took it. */
  publish(topic: string, payload: unknown, options?: PublishOptions): Promise<string> {
    return this.app.get(MessagingPublisher).publish({ topic }, payload, options);
  }

  /** Sends a request to `topic` through the app's publisher; resolves with the decoded reply. */
  request<R = unknown>(topic: string, payload: unknown, options?: RequestOptions): Promise<R> {
    return this.app.get(MessagingPublisher).request<R>({ topic }, payload, options);
  }

  /**
   * Resolves once the broker has nothing left to do: no message ready for a consumer, no handler
   * running and, with real time, no retry or delayed publish waiting: every message the last publish
   * caused, their retries and dead letters, has been handled. The broker says when it becomes idle;
   * nothing is polled. With `{ clock: 'manual' }` it does not move time: what waits for a delay waits
   * for `clock.advance()` or `clock.runAllDelays()` (`clock.pendingDelays` counts it). The messages
   * a paused handler or an open circuit holds wait for the test (`resume()`, the circuit's trial), not
   * for the broker: `settled()` does not wait for them. Rejects with a
   * `SettleTimeoutError` naming the busy queues after `timeoutMs` (a handler that never finishes).
   */
  settled(options: { timeoutMs?: number } = {}): Promise<void> {
    return this.waitIdle(!this.manualTime, options.timeoutMs ?? this.settleTimeoutMs);
  }

  /**
   * Every message the app sent since the kit started (or `clearPublished()`), oldest first, decoded:
   * its handlers' publishes and requests and the kit's own `publish()` and `request()`. Not retries
   * or replays, nor publishes no queue received.
   */
  get published(): PublishedMessage[] {
    return this.backend.recorded.map(({ message, request }) => ({
      topic: message.topic,
      queue: message.queue,
      payload: this.codec.decode(message),
      headers: message.headers,
      messageId: message.messageId,
      correlationId: message.correlationId,
      delayMs: message.delayMs,
      isRequest: request,
    }));
  }

  /** The messages published to topics matching `pattern` (`*` one word, `#` any), oldest first. */
  publishedTo<T = any>(pattern: string): PublishedMessage<T>[] {
    return this.published.filter(
      (m) => m.topic !== undefined && topicMatches(pattern, m.topic),
    ) as PublishedMessage<T>[];
  }

  /** Forgets what was published so far. */
  clearPublished(): void {
    this.backend.clearRecorded();
  }

  /** The dead letters of `service` (the app's by default), oldest first, with decoded payloads. */
  async deadLetters<T = any>(service = this.service): Promise<DecodedDeadLetter<T>[]> {
    const letters = await this.backend.deadLetters.list(service);
    return letters.map((letter) => ({ ...letter, payload: this.decodeOrRaw(letter) as T }));
  }

  /**
   * Answers requests to `topic`, which nobody in the app serves, with what `handler` returns (a
   * throw reaches the caller as a `RemoteHandlerError`). Stubbing it again replaces the handler.
   */
  stubRequest<T = any, R = unknown>(topic: string, handler: StubHandler<T, R>): void {
    this.stubs.add(topic, handler);
  }

  /**
   * Consumes `topic` (a pattern) as a service outside the test would, so the app's publishes to it
   * are routable; `handler` sees each message (a throw dead-letters it under `STUB_SERVICE`).
   */
  stubConsumer<T = any>(topic: string, handler: StubHandler<T, void> = () => undefined): void {
    this.stubs.add(topic, handler);
  }

  /** Removes the stubs and closes the app (which drains its handlers). Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.stubs.close();
      await this.app.close();
    })();
    return this.closed;
  }

  private async waitIdle(includeDelayed: boolean, timeoutMs: number): Promise<void> {
    const controller = new AbortController();
    const timer = setTimeout(
      () =>
        controller.abort(new SettleTimeoutError(timeoutMs, this.broker.work(), !this.manualTime)),
      timeoutMs,
    );
    try {
      await this.broker.whenIdle({
        includeDelayed,
        signal: controller.signal,
        held: () => this.server.heldDeliveries,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  private decodeOrRaw(letter: DeadLetter): unknown {
    try {
      return this.codec.decode(letter);
    } catch {
      return letter.body;
    }
  }
}

function describeWork(work: BrokerWork, realTime: boolean): string {
  const queues = work.queues
    .map((q) => `'${q.queue}' (${q.inFlight} in flight, ${q.ready} ready)`)
    .join(', ');
  const busy = queues ? `; busy queues: ${queues}` : '';
  return (
    `${work.inFlight} handler(s) still running, ${work.delayed} delay(s) pending${busy}. ` +
    `A handler that never finishes, or messages that keep causing each other?` +
    (realTime && work.delayed > 0 ? ` Long backoffs: create the kit with { clock: 'manual' }.` : '')
  );
}
