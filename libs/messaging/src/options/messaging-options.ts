import type { BrokerBackend } from '../backend/broker-backend.interface';
import { type CodecOptions, resolveCodec } from '../codec/codec-options';
import type { CodecSettings } from '../codec/message-codec';
import {
  type CloudEventsOptions,
  type CloudEventsSettings,
  resolveCloudEvents,
} from '../codec/cloud-events';
import { checkBoolean, checkInteger, checkOptionsObject } from '../errors/config-checks';
import { MessagingConfigError } from '../errors/messaging.errors';
import {
  checkRetryOptions,
  DEFAULT_RETRY,
  resolveRetry,
  type RetryOptions,
} from '../retry/retry-options';
import type { ResolvedRetryPolicy } from '../retry/retry-policy';
import type { MessageStore } from '../store/message-store';
import type { OutboxOptions, ResolvedOutboxOptions } from '../store/outbox-options';
import type { MessagingMetrics } from '../observability/messaging-metrics';
import type { RequestContextMode } from '../observability/message-scope';
import type { TracingOptions, TracingSpans } from '../observability/tracing-spans';

/** Options of `MessagingModule.forRoot()`. */
export interface MessagingModuleOptions {
  /**
   * The connection's name, for an app on several brokers: `@Consume(topic, { connection })` and
   * `@Producer({ topic, connection })` pick it. Import `forRoot()` once per name; the unnamed one is
   * `'default'`, which every app has, and whose `MessagingServer` serves the handlers of every connection.
   * @default 'default'
   */
  name?: string;
  /** The broker. @default new InMemoryBackend() */
  backend?: BrokerBackend;
  /**
   * This service's name, its consumer group: every service gets its own copy of a topic's messages,
   * instances of one service share them. Used in queue names, so keep it stable.
   */
  service: string;
  /** Default retry policy of every handler; `false` dead-letters on the first failure. */
  retry?: RetryOptions | false;
  /** Keep messages that failed for good in the service's dead-letter queue. @default true */
  deadLetter?: boolean;
  /** Default in-flight handlers per handler per instance. @default 10 */
  concurrency?: number;
  /**
   * How long `app.close()` waits for in-flight handlers; the messages of those still running then go
   * back to the broker unacknowledged, and their `ctx.signal` is aborted. @default 10000
   */
  shutdownTimeoutMs?: number;
  /** Default timeout of `request()` and `MessagingClient.send()`. @default 5000 */
  requestTimeoutMs?: number;
  /** Publish to a topic nobody consumes without an error. @default false */
  allowUnroutable?: boolean;
  /**
   * Send every `request()` like an event (persistent, confirmed, into the handler's durable queue)
   * instead of as a volatile request; each call can still say `{ durable }`. @default false
   */
  durableRequests?: boolean;
  /**
   * `false`: a producer-only instance. `MessagingServer` consumes no queue (its `@Consume` handlers
   * are listed once at start-up and not subscribed), publishing and `request()` work as usual, and
   * health reports no consumers. For a web tier that only sends, or a one-off script. @default true
   */
  consumers?: boolean;
  codec?: CodecOptions;
  /**
   * Send every message as a CloudEvent 1.0 (`true`, or `{ source, mode }`): in binary mode (the
   * default) its attributes travel as headers (`cloudEvents:` on RabbitMQ, `ce-` elsewhere) and the
   * body stays the payload: `specversion` 1.0, `id` the message id, `type` the topic (or queue),
   * `source` the service unless given, `time`. `@Producer({ topic, cloudEvents })` overrides it per
   * producer (and gives its `type`). CloudEvents are read whatever this says. @default false
   */
  cloudEvents?: boolean | Omit<CloudEventsOptions, 'type'>;
  /**
   * Where the inbox of `idempotent` handlers and the outbox are kept.
   * @default new InMemoryMessageStore() (one process; `PostgresMessageStore` for several or across restarts)
   */
  store?: MessageStore;
  /** The inbox of `@Consume(..., { idempotent: true })` handlers. */
  inbox?: InboxOptions;
  /** The relay that publishes what transactions wrote to the outbox. */
  outbox?: OutboxOptions;
  /**
   * Where the library's metrics go (published, consumed, handler duration, retries, dead letters...):
   * `new PrometheusMessagingMetrics()` or your own `MessagingMetrics`. @default none
   */
  metrics?: MessagingMetrics;
  /**
   * OpenTelemetry spans for publish and handle, when `@opentelemetry/api` is installed and a tracer
   * provider registered. Trace context (`traceparent`) travels in the headers either way. `true` is
   * `{ spans: 'auto' }`: one PRODUCER and one CONSUMER span per message, sharing the work with
   * OpenTelemetry's instrumentation of the broker's client when the backend sees it registered
   * (`@opentelemetry/instrumentation-amqplib`); `false` is `{ spans: false }` (see
   * {@link TracingOptions.spans}).
   * @default true
   */
  tracing?: boolean | TracingOptions;
  /**
   * When handlers run in an AsyncLocalStorage scope, so that `currentMessage()` works in the code they
   * call and what they publish continues their trace without OpenTelemetry. On Node 20 the scope is
   * not free (once a store is entered every promise of the process pays its hooks), so by default
   * (`'auto'`) handlers enter it only once the app has read it: from the first call of
   * `currentMessage()` on (a logger that stamps its lines with it makes one at start-up), for a
   * message that carries a trace (its `traceparent` continues into what the handler publishes), and
   * while OpenTelemetry spans are made. `true`: from the first message, always; `false`: never.
   * @default 'auto'
   */
  requestContext?: RequestContextMode;
  /** What health reports. */
  health?: HealthOptions;
}

/** Options of health (`MessagingModule.forRoot({ health })`). */
export interface HealthOptions {
  /**
   * How long a handler may be without its consumer (a re-subscribe after a reconnect) before health
   * says `down`. @default 5000
   */
  consumerGraceMs?: number;
}

/** Options of the inbox (`MessagingModule.forRoot({ inbox })`). */
export interface InboxOptions {
  /** How long a handled message id is remembered: a duplicate arriving later runs again. @default 7 days */
  ttlMs?: number;
}

/** Options with every default applied. */
export interface ResolvedMessagingOptions {
  /** The connection's name (`'default'` unless given). */
  readonly name: string;
  readonly backend: BrokerBackend | undefined;
  readonly service: string;
  readonly retry: ResolvedRetryPolicy | false;
  readonly deadLetter: boolean;
  readonly concurrency: number;
  readonly shutdownTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly allowUnroutable: boolean;
  readonly durableRequests: boolean;
  readonly consumers: boolean;
  readonly codec: CodecSettings;
  /** How messages are sent as CloudEvents; `undefined`: not. */
  readonly cloudEvents: CloudEventsSettings | undefined;
  readonly store: MessageStore | undefined;
  readonly inbox: { readonly ttlMs: number };
  readonly outbox: ResolvedOutboxOptions;
  readonly metrics: MessagingMetrics | undefined;
  /** Which spans the library makes (`false`: none). */
  readonly tracing: TracingSpans;
  readonly requestContext: RequestContextMode;
  readonly health: { readonly consumerGraceMs: number };
}

export const DEFAULT_INBOX_TTL_MS = 7 * 24 * 3600 * 1000;
export const DEFAULT_CONSUMER_GRACE_MS = 5_000;

export const DEFAULT_CONCURRENCY = 10;
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;
/** Most in-flight handlers of one handler in one instance (module default or `@Consume`). */
export const MAX_CONCURRENCY = 10_000;

const MODULE_KEYS: readonly (keyof MessagingModuleOptions)[] = [
  'name',
  'backend',
  'service',
  'retry',
  'deadLetter',
  'concurrency',
  'shutdownTimeoutMs',
  'requestTimeoutMs',
  'allowUnroutable',
  'durableRequests',
  'consumers',
  'codec',
  'cloudEvents',
  'store',
  'inbox',
  'outbox',
  'metrics',
  'tracing',
  'requestContext',
  'health',
];
/** The name of the connection of `forRoot()` without a `name`. */
export const DEFAULT_CONNECTION = 'default';
const CONNECTION_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$/;
const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
const WHERE = 'MessagingModule';

/**
 * Merges `options` over the defaults, nested objects included, and throws a
 * `MessagingConfigError` that says how to fix the first bad option.
 */
export function resolveMessagingOptions(options: MessagingModuleOptions): ResolvedMessagingOptions {
  if (typeof options !== 'object' || options === null) {
    throw new MessagingConfigError(
      `MessagingModule.forRoot() needs an options object, e.g. { service: 'orders' }`,
    );
  }
  checkOptionsObject(options, MODULE_KEYS, `${WHERE}.forRoot()`);
  const { service, backend } = options;
  if (typeof service !== 'string' || !SERVICE_NAME.test(service)) {
    throw new MessagingConfigError(
      `${WHERE}: 'service' must name this service (letters, digits, '.', '_', '-'; up to 100), ` +
        `e.g. { service: 'payments' }; got ${JSON.stringify(service)}`,
    );
  }
  if (backend !== undefined && !isBackend(backend)) {
    throw new MessagingConfigError(
      `${WHERE}: 'backend' must be a BrokerBackend instance such as new InMemoryBackend() or new AmqpBackend({ url })`,
    );
  }
  const retry = checkRetryOptions(options.retry, `${WHERE}: retry`);
  return {
    name: checkConnectionName(options.name, `${WHERE}.forRoot(): name`) ?? DEFAULT_CONNECTION,
    backend,
    service,
    retry: resolveRetry(retry, DEFAULT_RETRY, `${WHERE}: retry`),
    deadLetter: checkBoolean(options.deadLetter, true, `${WHERE}: deadLetter`),
    concurrency: checkInteger(
      options.concurrency,
      DEFAULT_CONCURRENCY,
      `${WHERE}: concurrency`,
      1,
      MAX_CONCURRENCY,
    ),
    shutdownTimeoutMs: checkInteger(
      options.shutdownTimeoutMs,
      DEFAULT_SHUTDOWN_TIMEOUT_MS,
      `${WHERE}: shutdownTimeoutMs`,
      0,
    ),
    requestTimeoutMs: checkInteger(
      options.requestTimeoutMs,
      DEFAULT_REQUEST_TIMEOUT_MS,
      `${WHERE}: requestTimeoutMs`,
      1,
    ),
    allowUnroutable: checkBoolean(options.allowUnroutable, false, `${WHERE}: allowUnroutable`),
    durableRequests: checkBoolean(options.durableRequests, false, `${WHERE}: durableRequests`),
    consumers: checkBoolean(options.consumers, true, `${WHERE}: consumers`),
    codec: resolveCodec(options.codec, `${WHERE}: codec`),
    cloudEvents: resolveModuleCloudEvents(options.cloudEvents, service),
    store: checkStore(options.store),
    inbox: resolveInbox(options.inbox),
    outbox: resolveOutbox(options.outbox),
    metrics: checkMetrics(options.metrics),
    tracing: resolveTracing(options.tracing),
    requestContext: checkRequestContext(options.requestContext),
    health: resolveHealth(options.health),
  };
}

function resolveModuleCloudEvents(
  option: MessagingModuleOptions['cloudEvents'],
  service: string,
): CloudEventsSettings | undefined {
  const where = `${WHERE}: cloudEvents`;
  if (typeof option === 'object' && option !== null && 'type' in option) {
    throw new MessagingConfigError(
      `${where}.type is given per producer (@Producer({ topic, cloudEvents: { type } })): every message of the module would otherwise have one type`,
    );
  }
  return resolveCloudEvents(option, { service }, where);
}

/**
 * A connection name given to `forRoot({ name })`, `@Consume(..., { connection })` or
 * `@Producer({ connection })`: a short word, so that logs and metrics can carry it as it is.
 */
export function checkConnectionName(name: unknown, where: string): string | undefined {
  if (name === undefined) return undefined;
  if (typeof name === 'string' && CONNECTION_NAME.test(name)) return name;
  throw new MessagingConfigError(
    `${where} must be a connection name (letters, digits, '_', '-'; up to 50), such as 'events'; got ${JSON.stringify(name)}`,
  );
}

function checkRequestContext(mode: unknown): RequestContextMode {
  if (mode === undefined || mode === 'auto') return 'auto';
  if (typeof mode === 'boolean') return mode;
  throw new MessagingConfigError(
    `${WHERE}: requestContext must be true, false or 'auto' (the default: the scope from the first ` +
      `call of currentMessage() on); got ${JSON.stringify(mode)}`,
  );
}

const TRACING_SPANS: readonly TracingSpans[] = ['auto', 'library', 'instrumentation', false];

function resolveTracing(tracing: unknown): TracingSpans {
  if (tracing === undefined || tracing === true) return 'auto';
  if (tracing === false) return false;
  const where = `${WHERE}: tracing`;
  if (typeof tracing !== 'object' || tracing === null) {
    throw new MessagingConfigError(
      `${where} must be true, false or { spans: 'auto' | 'library' | 'instrumentation' | false }; got ${JSON.stringify(tracing)}`,
    );
  }
  const { spans = 'auto' } = checkOptionsObject(tracing as TracingOptions, ['spans'], where) ?? {};
  if (TRACING_SPANS.includes(spans)) return spans;
  throw new MessagingConfigError(
    `${where}.spans must be 'auto' (the default: the broker client's OpenTelemetry instrumentation ` +
      `makes the consumer span when it is registered), 'library', 'instrumentation' or false; got ${JSON.stringify(spans)}`,
  );
}

function checkMetrics(metrics: unknown): MessagingMetrics | undefined {
  if (metrics === undefined) return undefined;
  const m = metrics as Record<string, unknown> | null;
  if (
    typeof m !== 'object' ||
    m === null ||
    !['increment', 'observe', 'set'].every((k) => typeof m[k] === 'function')
  ) {
    throw new MessagingConfigError(
      `${WHERE}: 'metrics' must be a MessagingMetrics (increment, observe, set) such as new PrometheusMessagingMetrics()`,
    );
  }
  return metrics as MessagingMetrics;
}

function resolveHealth(health: HealthOptions | undefined): ResolvedMessagingOptions['health'] {
  const where = `${WHERE}: health`;
  const checked = checkOptionsObject(health, ['consumerGraceMs'], where) ?? {};
  return {
    consumerGraceMs: checkInteger(
      checked.consumerGraceMs,
      DEFAULT_CONSUMER_GRACE_MS,
      `${where}.consumerGraceMs`,
      0,
    ),
  };
}

function checkStore(store: unknown): MessageStore | undefined {
  if (store === undefined) return undefined;
  const s = store as Record<string, unknown> | null;
  const methods = ['transaction', 'join', 'relay', 'backlog', 'purgeExpired', 'init', 'close'];
  if (typeof s !== 'object' || s === null || !methods.every((m) => typeof s[m] === 'function')) {
    throw new MessagingConfigError(
      `${WHERE}: 'store' must be a MessageStore such as new InMemoryMessageStore() or new PostgresMessageStore({ connectionString })`,
    );
  }
  return store as MessageStore;
}

function resolveInbox(inbox: InboxOptions | undefined): ResolvedMessagingOptions['inbox'] {
  const where = `${WHERE}: inbox`;
  const checked = checkOptionsObject(inbox, ['ttlMs'], where) ?? {};
  return { ttlMs: checkInteger(checked.ttlMs, DEFAULT_INBOX_TTL_MS, `${where}.ttlMs`, 1) };
}

function resolveOutbox(outbox: OutboxOptions | undefined): ResolvedOutboxOptions {
  const where = `${WHERE}: outbox`;
  const o =
    checkOptionsObject(outbox, ['relay', 'pollIntervalMs', 'batchSize', 'maxBackoffMs'], where) ??
    {};
  return {
    relay: checkBoolean(o.relay, true, `${where}.relay`),
    pollIntervalMs: checkInteger(o.pollIntervalMs, 1_000, `${where}.pollIntervalMs`, 10),
    batchSize: checkInteger(o.batchSize, 100, `${where}.batchSize`, 1, 10_000),
    maxBackoffMs: checkInteger(o.maxBackoffMs, 30_000, `${where}.maxBackoffMs`, 1),
  };
}

function isBackend(value: unknown): value is BrokerBackend {
  const b = value as BrokerBackend;
  return (
    typeof b === 'object' &&
    b !== null &&
    ['connect', 'close', 'publish', 'subscribe', 'request'].every(
      (m) => typeof (b as any)[m] === 'function',
    )
  );
}
