import {
  checkBoolean,
  checkInteger,
  checkName,
  checkNumber,
  checkOptionsObject,
  namespaceOption,
} from '../../errors/config-checks';
import { redactCredentials } from '../../backend/redact-credentials';
import {
  resolveTlsOptions,
  type ResolvedTlsOptions,
  type TlsOptions,
} from '../../backend/tls-options';
import { MessagingConfigError } from '../../errors/messaging.errors';

/** TLS settings for `amqps://` URLs: the shared {@link TlsOptions}. */
export type AmqpTlsOptions = TlsOptions;

/** Exponential backoff between reconnection attempts. */
export interface AmqpReconnectOptions {
  /** @default 500 */
  readonly initialDelayMs?: number;
  /** @default 10000 */
  readonly maxDelayMs?: number;
  /** @default 2 */
  readonly multiplier?: number;
}

/**
 * Options of {@link AmqpBackend}.
 *
 * @example
 * new AmqpBackend({ url: process.env.BROKER_URL, prefetch: 20 });
 * new AmqpBackend({ urls: ['amqps://app:secret@rmq-1', 'amqps://app:secret@rmq-2'], tls: { ca } });
 */
export interface AmqpBackendOptions {
  /** Broker URL, `amqp://user:password@host:port/vhost` or `amqps://...`. */
  readonly url?: string;
  /** Several broker URLs, tried in order on every (re)connection (failover). */
  readonly urls?: readonly string[];
  /**
   * What keeps apps on one broker apart: the name of the durable topic exchange every topic is
   * published to. Apps that exchange messages use the same namespace. The same option on every
   * backend (`RedisStreamsBackend` and `NatsBackend` use it as their key and subject prefix).
   * @default 'messaging'
   */
  readonly namespace?: string;
  /** @deprecated The older name of {@link namespace}: still works, told once per process. */
  readonly exchange?: string;
  /**
   * Prefetch of a subscription whose `concurrency` is not a positive number.
   * @default 10
   */
  readonly prefetch?: number;
  /**
   * AMQP heartbeat, set explicitly so a dead peer (a cut or black-holed link) is detected in two to
   * three times this (amqplib gives up after two silent intervals) and the backend fails over:
   * seconds, not minutes.
   * @default 5
   */
  readonly heartbeatSeconds?: number;
  /** TLS options for `amqps://` URLs. */
  readonly tls?: AmqpTlsOptions;
  /** Name of the connection shown in the management UI and `rabbitmqctl list_connections`. */
  readonly connectionName?: string;
  /**
   * Longest wait for a publisher confirm; also bounds a publish made while disconnected.
   * @default 10000
   */
  readonly publishTimeoutMs?: number;
  /**
   * How long `connect()` keeps trying before it rejects (later reconnections never give up). A login,
   * virtual host or TLS certificate the broker refuses fails it at once: retrying cannot fix those.
   * Each failed attempt is an `error` event naming the broker, the cause and the fix (a warning in
   * the log when nothing listens to those events); one attempt takes at most this or 10 s.
   * @default 30000
   */
  readonly connectTimeoutMs?: number;
  /** Backoff between reconnection attempts. */
  readonly reconnect?: AmqpReconnectOptions;
  /**
   * Most unconfirmed publishes at once; further publishes wait (bounded by `publishTimeoutMs`).
   * @default 1000
   */
  readonly maxInFlightPublishes?: number;
  /**
   * Most publishes waiting to be written (no connection, `maxInFlightPublishes` reached, or TCP
   * back-pressure); beyond it a publish is refused at once with `PublishBackpressureError` rather
   * than held in memory.
   * @default 10000
   */
  readonly maxQueuedPublishes?: number;
  /**
   * Type of the queues this backend declares (work, retry, delay and dead-letter queues).
   * `quorum` (the default) is replicated, and gets `x-delivery-limit` as a safety net against a
   * message that crashes its consumer in a loop. `classic` suits a single development broker or a
   * RabbitMQ older than 3.10 (quorum queues support TTL, which retries need, only since 3.10).
   * @default 'quorum'
   */
  readonly queueType?: 'quorum' | 'classic';
  /**
   * Quorum work queues only: after this many redeliveries caused by crashes or lost connections (not
   * by retries, which the library counts itself) the broker moves the message to the dead-letter queue.
   * @default 20
   */
  readonly deliveryLimit?: number;
  /**
   * Declare exchanges, queues and bindings. Turn off when the broker user has no `configure`
   * permission and the topology is provisioned separately.
   * @default true
   */
  readonly assertTopology?: boolean;
  /**
   * Queues a handler may send its reply to, besides RabbitMQ's direct reply-to addresses (which are
   * all this library's requests use). A request naming any other queue as its `replyTo` is handled
   * as an event, unanswered: the service's permissions must not publish wherever a sender asks.
   * @default []
   */
  readonly replyToQueues?: readonly string[];
  /**
   * Consume over the same connection as publishes. By default the subscriptions of a backend have a
   * connection of their own, opened with the first one (RabbitMQ's advice): the broker then serves
   * the two directions in parallel, and a memory or disk alarm, which blocks connections that
   * publish, never holds back the consumers' acknowledgements. Set it where connections are counted
   * (a hosted plan's limit) to have one per backend.
   * @default false
   */
  readonly sharedConnection?: boolean;
}

/** {@link AmqpBackendOptions} with every default applied. */
export interface ResolvedAmqpOptions {
  readonly urls: readonly string[];
  readonly exchange: string;
  readonly prefetch: number;
  readonly heartbeatSeconds: number;
  readonly tls?: ResolvedTlsOptions;
  readonly connectionName?: string;
  readonly publishTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly reconnect: Required<AmqpReconnectOptions>;
  readonly maxInFlightPublishes: number;
  readonly maxQueuedPublishes: number;
  readonly queueType: 'quorum' | 'classic';
  readonly deliveryLimit: number;
  readonly assertTopology: boolean;
  readonly replyToQueues: readonly string[];
  readonly sharedConnection: boolean;
}

/** Defaults of {@link AmqpBackendOptions}. */
export const DEFAULT_AMQP_OPTIONS = {
  exchange: 'messaging',
  prefetch: 10,
  heartbeatSeconds: 5,
  publishTimeoutMs: 10_000,
  connectTimeoutMs: 30_000,
  reconnect: { initialDelayMs: 500, maxDelayMs: 10_000, multiplier: 2 },
  maxInFlightPublishes: 1000,
  maxQueuedPublishes: 10_000,
  queueType: 'quorum',
  deliveryLimit: 20,
  assertTopology: true,
  sharedConnection: false,
} as const;

/**
 * The wait before reconnection attempt `attempt` (0 for the first retry) of the connection, a
 * consumer's channel or the publisher's channel: `initialDelayMs × multiplier^attempt`, capped at
 * `maxDelayMs`, less up to 20% at random so that many clients do not reconnect in step.
 */
export function reconnectDelay(
  reconnect: Required<AmqpReconnectOptions>,
  attempt: number,
  random: number = Math.random(),
): number {
  const base = Math.min(
    reconnect.maxDelayMs,
    reconnect.initialDelayMs * reconnect.multiplier ** Math.max(0, attempt),
  );
  return Math.round(base * (0.8 + 0.2 * random));
}

const OPTION_KEYS: readonly (keyof AmqpBackendOptions)[] = [
  'url',
  'urls',
  'namespace',
  'exchange',
  'prefetch',
  'heartbeatSeconds',
  'tls',
  'connectionName',
  'publishTimeoutMs',
  'connectTimeoutMs',
  'reconnect',
  'maxInFlightPublishes',
  'maxQueuedPublishes',
  'queueType',
  'deliveryLimit',
  'assertTopology',
  'replyToQueues',
  'sharedConnection',
];
const RECONNECT_KEYS: readonly (keyof AmqpReconnectOptions)[] = [
  'initialDelayMs',
  'maxDelayMs',
  'multiplier',
];
const WHERE = 'AmqpBackend';

/** Applies defaults and validates; throws {@link MessagingConfigError} saying what to change. */
export function resolveAmqpOptions(options: AmqpBackendOptions | undefined): ResolvedAmqpOptions {
  const o = checkOptionsObject(options, OPTION_KEYS, `new ${WHERE}()`) ?? {};
  const urls = [...(o.url !== undefined ? [o.url] : []), ...(o.urls ?? [])];
  if (urls.length === 0) {
    throw new MessagingConfigError(
      `${WHERE}: no broker URL. Pass { url: 'amqp://user:password@host:5672' } or { urls: [...] }.`,
    );
  }
  for (const url of urls) validateUrl(url);
  const plain = urls.find((url) => url.toLowerCase().startsWith('amqp://'));
  if (o.tls !== undefined && plain !== undefined) {
    // amqplib would connect in plain text and ignore `tls`: the credentials would cross unencrypted.
    throw new MessagingConfigError(
      `${WHERE}: tls is set but '${redactCredentials(plain)}' is not a TLS URL. ` +
        'Use amqps:// for every URL, or drop the tls option.',
    );
  }
  const exchange = namespaceOption(o, 'exchange', WHERE) ?? DEFAULT_AMQP_OPTIONS.exchange;
  if (
    typeof exchange !== 'string' ||
    !/^[A-Za-z0-9_.:-]{1,200}$/.test(exchange) ||
    exchange.startsWith('amq.')
  ) {
    throw new MessagingConfigError(
      `${WHERE}: namespace ${JSON.stringify(exchange)} is not a valid exchange name. Use letters, digits, '.', '-', '_' or ':' (at most 200, not starting with 'amq.').`,
    );
  }
  const r = checkOptionsObject(o.reconnect, RECONNECT_KEYS, `${WHERE}: reconnect`) ?? {};
  const defaults = DEFAULT_AMQP_OPTIONS.reconnect;
  const reconnect = {
    initialDelayMs: checkInteger(
      r.initialDelayMs,
      defaults.initialDelayMs,
      `${WHERE}: reconnect.initialDelayMs`,
      1,
    ),
    maxDelayMs: checkInteger(
      r.maxDelayMs,
      defaults.maxDelayMs,
      `${WHERE}: reconnect.maxDelayMs`,
      1,
    ),
    multiplier: checkNumber(r.multiplier, defaults.multiplier, `${WHERE}: reconnect.multiplier`, 1),
  };
  if (reconnect.maxDelayMs < reconnect.initialDelayMs) {
    throw new MessagingConfigError(
      `${WHERE}: reconnect.maxDelayMs (${reconnect.maxDelayMs}) is below reconnect.initialDelayMs (${reconnect.initialDelayMs}); raise maxDelayMs.`,
    );
  }
  const queueType = o.queueType ?? DEFAULT_AMQP_OPTIONS.queueType;
  if (queueType !== 'quorum' && queueType !== 'classic') {
    throw new MessagingConfigError(
      `${WHERE}: queueType must be 'quorum' or 'classic', got ${JSON.stringify(queueType)}.`,
    );
  }
  const d = DEFAULT_AMQP_OPTIONS;
  return {
    urls,
    exchange,
    prefetch: checkInteger(o.prefetch, d.prefetch, `${WHERE}: prefetch`, 1, 65_535),
    heartbeatSeconds: checkInteger(
      o.heartbeatSeconds,
      d.heartbeatSeconds,
      `${WHERE}: heartbeatSeconds`,
      1,
      3600,
    ),
    tls: resolveTlsOptions(o.tls, WHERE),
    connectionName: checkName(o.connectionName, `${WHERE}: connectionName`),
    publishTimeoutMs: checkInteger(
      o.publishTimeoutMs,
      d.publishTimeoutMs,
      `${WHERE}: publishTimeoutMs`,
      1,
    ),
    connectTimeoutMs: checkInteger(
      o.connectTimeoutMs,
      d.connectTimeoutMs,
      `${WHERE}: connectTimeoutMs`,
      1,
    ),
    reconnect,
    maxInFlightPublishes: checkInteger(
      o.maxInFlightPublishes,
      d.maxInFlightPublishes,
      `${WHERE}: maxInFlightPublishes`,
      1,
      1_000_000,
    ),
    maxQueuedPublishes: checkInteger(
      o.maxQueuedPublishes,
      d.maxQueuedPublishes,
      `${WHERE}: maxQueuedPublishes`,
      0,
      10_000_000,
    ),
    queueType,
    deliveryLimit: checkInteger(
      o.deliveryLimit,
      d.deliveryLimit,
      `${WHERE}: deliveryLimit`,
      1,
      1_000_000,
    ),
    assertTopology: checkBoolean(o.assertTopology, d.assertTopology, `${WHERE}: assertTopology`),
    replyToQueues: checkQueueList(o.replyToQueues, `${WHERE}: replyToQueues`),
    sharedConnection: checkBoolean(
      o.sharedConnection,
      d.sharedConnection,
      `${WHERE}: sharedConnection`,
    ),
  };
}

function checkQueueList(value: unknown, where: string): readonly string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((q) => typeof q !== 'string' || q.length === 0)) {
    throw new MessagingConfigError(
      `${where} must be an array of queue names, such as ['billing.replies'].`,
    );
  }
  return [...(value as string[])];
}

function validateUrl(url: unknown): void {
  if (typeof url !== 'string' || url.length === 0) {
    throw new MessagingConfigError(
      `${WHERE}: a broker URL must be a non-empty string, got ${typeof url}.`,
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new MessagingConfigError(
      `${WHERE}: '${redactCredentials(url)}' is not a valid URL. Expected amqp://user:password@host:5672/vhost.`,
    );
  }
  if (parsed.protocol !== 'amqp:' && parsed.protocol !== 'amqps:') {
    throw new MessagingConfigError(
      `${WHERE}: URL scheme '${parsed.protocol}' is not supported in '${redactCredentials(url)}'. Use amqp:// or amqps:// (TLS).`,
    );
  }
  if (!parsed.hostname) {
    throw new MessagingConfigError(`${WHERE}: URL '${redactCredentials(url)}' has no host.`);
  }
}
