import { checkInteger, checkName, checkOptionsObject } from '../../errors/config-checks';
import { MessagingConfigError } from '../../errors/messaging.errors';
import { type RedisTlsOptions, resolveRedisTls } from './redis-tls';

/**
 * Options of {@link RedisStreamsBackend}.
 *
 * @example
 * new RedisStreamsBackend({ url: 'redis://127.0.0.1:6379' });
 * new RedisStreamsBackend({ url: process.env.REDIS_URL, prefix: 'shop', maxLength: 1_000_000 });
 * new RedisStreamsBackend({ url: 'rediss://redis.internal:6380', tls: { ca: readFileSync('ca.pem') } });
 */
export interface RedisStreamsBackendOptions {
  /**
   * Redis URL, `redis://[user:password@]host:port[/db]` or `rediss://` (TLS).
   * @default 'redis://127.0.0.1:6379'
   */
  readonly url?: string;
  /**
   * TLS options for a `rediss://` URL: the CA to trust, a client certificate and key (mutual TLS),
   * the server name to verify. Checked when the backend is constructed.
   * @default none: a `rediss://` URL trusts the system's CAs
   */
  readonly tls?: RedisTlsOptions;
  /**
   * Starts every key this backend reads or writes (`<prefix>:t:<topic>`, `<prefix>:q:<queue>`, ...).
   * Apps that exchange messages use the same prefix; apps or test runs that must not see each other
   * use different ones on one Redis.
   * @default 'messaging'
   */
  readonly prefix?: string;
  /**
   * Approximate bound of every topic stream (`XADD ... MAXLEN ~ n`): memory stays bounded, and an
   * entry trimmed before a slow consumer group read it is lost to that group. Size it above the
   * backlog a consumer may fall behind by. Queue and dead-letter streams are never trimmed (they hold
   * only what is unhandled).
   * @default 100000
   */
  readonly maxLength?: number;
  /**
   * A delivery pending this long (its consumer crashed or lost its connection) is claimed by another
   * instance (`XAUTOCLAIM`) and handled again. A live handler keeps its deliveries from being
   * claimed, however long it runs.
   * @default 30000
   */
  readonly claimIdleMs?: number;
  /**
   * A delivery claimed from crashed consumers this many times (it may crash its consumer each time)
   * goes to the dead-letter queue with reason `delivery-limit` instead of being handled again. Library
   * retries do not count: each is a new entry.
   * @default 20
   */
  readonly deliveryLimit?: number;
  /**
   * How long one blocking read (`XREADGROUP BLOCK`) waits; also how soon a wildcard subscription sees
   * a topic published for the first time.
   * @default 1000
   */
  readonly blockMs?: number;
  /**
   * How often each instance moves due delayed messages and retries into their streams.
   * @default 50
   */
  readonly delayPollMs?: number;
  /**
   * Longest wait for Redis to accept a publish or a settlement, including while reconnecting.
   * @default 10000
   */
  readonly commandTimeoutMs?: number;
  /**
   * How long `connect()` keeps trying before it rejects (later reconnections never give up).
   * @default 10000
   */
  readonly connectTimeoutMs?: number;
  /**
   * Longest wait, on close, for deliveries in flight to settle.
   * @default 10000
   */
  readonly closeTimeoutMs?: number;
  /** Name of the connections, as `CLIENT LIST` shows them. */
  readonly connectionName?: string;
}

/** {@link RedisStreamsBackendOptions} with every default applied. */
export interface ResolvedRedisOptions {
  readonly url: string;
  readonly tls?: RedisTlsOptions;
  readonly prefix: string;
  readonly maxLength: number;
  readonly claimIdleMs: number;
  readonly deliveryLimit: number;
  readonly blockMs: number;
  readonly delayPollMs: number;
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly closeTimeoutMs: number;
  readonly connectionName?: string;
}

/** Defaults of {@link RedisStreamsBackendOptions}. */
export const DEFAULT_REDIS_OPTIONS = {
  url: 'redis://127.0.0.1:6379',
  prefix: 'messaging',
  maxLength: 100_000,
  claimIdleMs: 30_000,
  deliveryLimit: 20,
  blockMs: 1_000,
  delayPollMs: 50,
  commandTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  closeTimeoutMs: 10_000,
} as const;

const OPTION_KEYS: readonly (keyof RedisStreamsBackendOptions)[] = [
  'url',
  'tls',
  'prefix',
  'maxLength',
  'claimIdleMs',
  'deliveryLimit',
  'blockMs',
  'delayPollMs',
  'commandTimeoutMs',
  'connectTimeoutMs',
  'closeTimeoutMs',
  'connectionName',
];
const WHERE = 'RedisStreamsBackend';

/** Applies defaults and validates; throws {@link MessagingConfigError} saying what to change. */
export function resolveRedisOptions(
  options: RedisStreamsBackendOptions | undefined,
): ResolvedRedisOptions {
  const o = checkOptionsObject(options, OPTION_KEYS, `new ${WHERE}()`) ?? {};
  const d = DEFAULT_REDIS_OPTIONS;
  const url = o.url ?? d.url;
  validateUrl(url);
  const prefix = o.prefix ?? d.prefix;
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9_.-]{1,100}$/.test(prefix)) {
    throw new MessagingConfigError(
      `${WHERE}: prefix ${JSON.stringify(prefix)} is not valid. Use 1 to 100 letters, digits, '.', '-' or '_' (no ':', which separates the parts of a key).`,
    );
  }
  const claimIdleMs = checkInteger(o.claimIdleMs, d.claimIdleMs, `${WHERE}: claimIdleMs`, 100);
  const blockMs = checkInteger(o.blockMs, d.blockMs, `${WHERE}: blockMs`, 10, 60_000);
  return {
    url,
    tls: resolveRedisTls(o.tls, url, redactRedisUrl(url), WHERE),
    prefix,
    maxLength: checkInteger(o.maxLength, d.maxLength, `${WHERE}: maxLength`, 100),
    claimIdleMs,
    deliveryLimit: checkInteger(
      o.deliveryLimit,
      d.deliveryLimit,
      `${WHERE}: deliveryLimit`,
      1,
      1_000_000,
    ),
    blockMs,
    delayPollMs: checkInteger(o.delayPollMs, d.delayPollMs, `${WHERE}: delayPollMs`, 5, 60_000),
    commandTimeoutMs: checkInteger(
      o.commandTimeoutMs,
      d.commandTimeoutMs,
      `${WHERE}: commandTimeoutMs`,
      100,
    ),
    connectTimeoutMs: checkInteger(
      o.connectTimeoutMs,
      d.connectTimeoutMs,
      `${WHERE}: connectTimeoutMs`,
      100,
    ),
    closeTimeoutMs: checkInteger(o.closeTimeoutMs, d.closeTimeoutMs, `${WHERE}: closeTimeoutMs`, 0),
    connectionName: checkName(o.connectionName, `${WHERE}: connectionName`),
  };
}

/** `scheme://user:` then the password, up to the last `@`. */
const CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:).*?@(?=[^@\s'"`]*(?:[\s'"`,]|$))/gi;

/** `url` with its password replaced by `***`, for logs and errors. */
export function redactRedisUrl(url: string): string {
  return url.replace(CREDENTIALS, '$1***@');
}

function validateUrl(url: unknown): asserts url is string {
  if (typeof url !== 'string' || url.length === 0) {
    throw new MessagingConfigError(
      `${WHERE}: url must be a non-empty string such as 'redis://127.0.0.1:6379', got ${typeof url}.`,
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new MessagingConfigError(
      `${WHERE}: '${redactRedisUrl(url)}' is not a valid URL. Expected redis://[user:password@]host:6379[/db].`,
    );
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new MessagingConfigError(
      `${WHERE}: URL scheme '${parsed.protocol}' is not supported in '${redactRedisUrl(url)}'. Use redis:// or rediss:// (TLS).`,
    );
  }
  if (!parsed.hostname) {
    throw new MessagingConfigError(`${WHERE}: URL '${redactRedisUrl(url)}' has no host.`);
  }
}
