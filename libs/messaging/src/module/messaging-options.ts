import type { BrokerBackend } from '../backend/broker-backend.interface';
import type { CodecSettings } from '../codec/message-codec';
import { MessagingConfigError } from '../errors/messaging.errors';
import type { ResolvedBackoff, ResolvedRetryPolicy } from '../retry/retry-policy';

/** Backoff options; every field is optional and merged over the defaults. */
export interface BackoffOptions {
  /** Delay before the second attempt. @default 1000 */
  initialDelayMs?: number;
  /** Growth factor of each next delay. @default 2 */
  multiplier?: number;
  /** Upper bound of any delay. @default 60000 */
  maxDelayMs?: number;
  /**
   * Random extra delay, as a fraction of the delay (0 to 1), so that retries of many messages do
   * not stampede. `true` means the default fraction, `false` none. @default 0.2
   */
  jitter?: number | boolean;
}

/** Retry options, module-wide (`forRoot({ retry })`) or per handler (`@Consume(topic, { retry })`). */
export interface RetryOptions {
  /** Handler calls in all, the first included; 1 means no retry. @default 5 */
  maxAttempts?: number;
  backoff?: BackoffOptions;
}

/** Body encoding options. */
export interface CodecOptions {
  /** Largest body published or accepted, compressed or not. @default 1048576 (1 MiB) */
  maxBodyBytes?: number;
  /** Compress (gzip) bodies of at least this many bytes; `false` never compresses. @default false */
  compressAboveBytes?: number | false;
  /** Deepest nesting accepted in an incoming JSON body. @default 64 */
  maxJsonDepth?: number;
}

/** Options of `MessagingModule.forRoot()`. */
export interface MessagingModuleOptions {
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
  /** How long `app.close()` waits for in-flight handlers. @default 10000 */
  shutdownTimeoutMs?: number;
  /** Default timeout of `request()` and `MessagingClient.send()`. @default 5000 */
  requestTimeoutMs?: number;
  /** Publish to a topic nobody consumes without an error. @default false */
  allowUnroutable?: boolean;
  codec?: CodecOptions;
}

/** Options with every default applied. */
export interface ResolvedMessagingOptions {
  readonly backend: BrokerBackend | undefined;
  readonly service: string;
  readonly retry: ResolvedRetryPolicy | false;
  readonly deadLetter: boolean;
  readonly concurrency: number;
  readonly shutdownTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly allowUnroutable: boolean;
  readonly codec: CodecSettings;
}

export const DEFAULT_BACKOFF: ResolvedBackoff = {
  initialDelayMs: 1000,
  multiplier: 2,
  maxDelayMs: 60_000,
  jitter: 0.2,
};
export const DEFAULT_RETRY: ResolvedRetryPolicy = { maxAttempts: 5, backoff: DEFAULT_BACKOFF };
export const DEFAULT_CODEC: CodecSettings = {
  maxBodyBytes: 1024 * 1024,
  compressAboveBytes: false,
  maxJsonDepth: 64,
};
/**
 * Longest delay of a retry or a delayed publish: 24 hours (the longest delay tier of `AmqpBackend`).
 * Longer waits belong in a scheduler, not in a broker queue.
 */
export const MAX_DELAY_MS = 86_400_000;
export const DEFAULT_CONCURRENCY = 10;
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;

const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

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
  const { service, backend } = options;
  if (typeof service !== 'string' || !SERVICE_NAME.test(service)) {
    throw new MessagingConfigError(
      `MessagingModule: 'service' must name this service (letters, digits, '.', '_', '-'; up to 100), ` +
        `e.g. { service: 'payments' }; got ${JSON.stringify(service)}`,
    );
  }
  if (backend !== undefined && !isBackend(backend)) {
    throw new MessagingConfigError(
      `MessagingModule: 'backend' must be a BrokerBackend instance such as new InMemoryBackend() or new AmqpBackend({ url })`,
    );
  }
  return {
    backend,
    service,
    retry: resolveRetry(options.retry, DEFAULT_RETRY, 'MessagingModule: retry'),
    deadLetter: resolveBoolean(options.deadLetter, true, 'MessagingModule: deadLetter'),
    concurrency: resolveInteger(
      options.concurrency,
      DEFAULT_CONCURRENCY,
      'MessagingModule: concurrency',
      1,
      10_000,
    ),
    shutdownTimeoutMs: resolveInteger(
      options.shutdownTimeoutMs,
      DEFAULT_SHUTDOWN_TIMEOUT_MS,
      'MessagingModule: shutdownTimeoutMs',
      0,
    ),
    requestTimeoutMs: resolveInteger(
      options.requestTimeoutMs,
      DEFAULT_REQUEST_TIMEOUT_MS,
      'MessagingModule: requestTimeoutMs',
      1,
    ),
    allowUnroutable: resolveBoolean(
      options.allowUnroutable,
      false,
      'MessagingModule: allowUnroutable',
    ),
    codec: resolveCodec(options.codec),
  };
}

/**
 * Merges retry options over `base` (the module's policy for a handler, the defaults for the module).
 * `false` turns retries off.
 */
export function resolveRetry(
  retry: RetryOptions | false | undefined,
  base: ResolvedRetryPolicy | false,
  where: string,
): ResolvedRetryPolicy | false {
  if (retry === false) return false;
  if (retry === undefined) return base;
  if (typeof retry !== 'object' || retry === null) {
    throw new MessagingConfigError(
      `${where} must be false or { maxAttempts?, backoff? }, got ${JSON.stringify(retry)}`,
    );
  }
  const from = base === false ? DEFAULT_RETRY : base;
  const backoff = retry.backoff ?? {};
  if (typeof backoff !== 'object' || backoff === null) {
    throw new MessagingConfigError(
      `${where}.backoff must be an object like { initialDelayMs: 1000, multiplier: 2 }`,
    );
  }
  const resolved: ResolvedRetryPolicy = {
    maxAttempts: resolveInteger(
      retry.maxAttempts,
      from.maxAttempts,
      `${where}.maxAttempts`,
      1,
      1_000_000,
    ),
    backoff: {
      initialDelayMs: resolveInteger(
        backoff.initialDelayMs,
        from.backoff.initialDelayMs,
        `${where}.backoff.initialDelayMs`,
        0,
        MAX_DELAY_MS,
      ),
      multiplier: resolveNumber(
        backoff.multiplier,
        from.backoff.multiplier,
        `${where}.backoff.multiplier`,
        1,
      ),
      maxDelayMs: resolveInteger(
        backoff.maxDelayMs,
        from.backoff.maxDelayMs,
        `${where}.backoff.maxDelayMs`,
        0,
        MAX_DELAY_MS,
      ),
      jitter: resolveJitter(backoff.jitter, from.backoff.jitter, `${where}.backoff.jitter`),
    },
  };
  if (resolved.backoff.maxDelayMs < resolved.backoff.initialDelayMs) {
    throw new MessagingConfigError(
      `${where}.backoff.maxDelayMs (${resolved.backoff.maxDelayMs}) is below initialDelayMs (${resolved.backoff.initialDelayMs}); raise maxDelayMs`,
    );
  }
  return resolved;
}

function resolveCodec(codec: CodecOptions | undefined): CodecSettings {
  if (codec === undefined) return DEFAULT_CODEC;
  if (typeof codec !== 'object' || codec === null) {
    throw new MessagingConfigError(
      `MessagingModule: codec must be an object like { maxBodyBytes: 1048576 }`,
    );
  }
  const compress = codec.compressAboveBytes;
  return {
    maxBodyBytes: resolveInteger(
      codec.maxBodyBytes,
      DEFAULT_CODEC.maxBodyBytes,
      'MessagingModule: codec.maxBodyBytes',
      1,
    ),
    compressAboveBytes:
      compress === undefined
        ? DEFAULT_CODEC.compressAboveBytes
        : compress === false
          ? false
          : resolveInteger(compress, 0, 'MessagingModule: codec.compressAboveBytes', 0),
    maxJsonDepth: resolveInteger(
      codec.maxJsonDepth,
      DEFAULT_CODEC.maxJsonDepth,
      'MessagingModule: codec.maxJsonDepth',
      1,
      10_000,
    ),
  };
}

function resolveJitter(
  value: number | boolean | undefined,
  fallback: number,
  where: string,
): number {
  if (value === undefined) return fallback;
  if (value === true) return DEFAULT_BACKOFF.jitter;
  if (value === false) return 0;
  return resolveNumber(value, fallback, where, 0, 1);
}

/** Validates an optional integer option within bounds. */
export function resolveInteger(
  value: unknown,
  fallback: number,
  where: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new MessagingConfigError(
      `${where} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function resolveNumber(
  value: unknown,
  fallback: number,
  where: string,
  min: number,
  max = Number.MAX_VALUE,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new MessagingConfigError(
      `${where} must be a number from ${min} to ${max}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function resolveBoolean(value: unknown, fallback: boolean, where: string): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') {
    throw new MessagingConfigError(`${where} must be true or false, got ${JSON.stringify(value)}`);
  }
  return value;
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
