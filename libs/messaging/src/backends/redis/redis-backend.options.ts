import {
  checkInteger,
  checkName,
  checkOptionsObject,
  namespaceOption,
} from '../../errors/config-checks';
import { redactCredentials } from '../../backend/redact-credentials';
import type { ResolvedTlsOptions } from '../../backend/tls-options';
import { MessagingConfigError } from '../../errors/messaging.errors';
import { hashTagOf } from './redis-cluster';
import { type RedisTlsOptions, resolveRedisTls } from './redis-tls';

/**
 * Options of {@link RedisStreamsBackend}.
 *
 * @example
 * new RedisStreamsBackend({ url: 'redis://127.0.0.1:6379' });
 * new RedisStreamsBackend({ url: process.env.REDIS_URL, prefix: 'shop', maxLength: 1_000_000 });
 * new RedisStreamsBackend({ url: 'rediss://redis.internal:6380', tls: { ca: readFileSync('ca.pem') } });
 * new RedisStreamsBackend({ cluster: { nodes: ['redis://10.0.0.1:6379', 'redis://10.0.0.2:6379'] }, prefix: '{shop}' });
 */
export interface RedisStreamsBackendOptions {
  /**
   * Redis URL, `redis://[user:password@]host:port[/db]` or `rediss://` (TLS).
   * @default 'redis://127.0.0.1:6379'
   */
  readonly url?: string;
  /**
   * A Redis Cluster instead of one server (then no `url`): the addresses of some of its nodes
   * (`redis://[user:password@]host:port` or `rediss://`; the others are discovered). The prefix must
   * then carry a hash tag (`{shop}`), which puts every key of the prefix in one hash slot, so on one
   * master: its replicas give availability, not capacity; services that need more masters use
   * different prefixes. See `redis-cluster.ts`.
   * @default none: one server, at `url`
   */
  readonly cluster?: RedisClusterOptions;
  /**
   * Makes a publish resolve only once `replicas` replicas have the message (`WAIT replicas
   * timeoutMs`, one per batch of publishes written in the same turn of the event loop): Redis
   * replicates asynchronously, so without it a confirmed message may be lost when its master fails
   * over before a replica got it. A `WAIT` that counts fewer replicas within `timeoutMs` rejects the
   * batch's publishes with `PublishTimeoutError` (the message is on the master and may or may not
   * survive its failover). The `WAIT` holds the command connection meanwhile (Redis answers nothing
   * else on it until then).
   * @default none: a publish resolves once the master has the message
   */
  readonly waitForReplicas?: RedisWaitForReplicas;
  /**
   * TLS options for a `rediss://` URL: the CA to trust, a client certificate and key (mutual TLS),
   * the server name to verify. Checked when the backend is constructed.
   * @default none: a `rediss://` URL trusts the system's CAs
   */
  readonly tls?: RedisTlsOptions;
  /**
   * What keeps apps on one Redis apart: it starts every key this backend reads or writes
   * (`<namespace>:t:<topic>`, `<namespace>:q:<queue>`, ...). Apps that exchange messages use the same
   * namespace; apps or test runs that must not see each other use different ones. The same option on
   * every backend (the exchange on RabbitMQ, the subject and stream prefix on NATS).
   * @default 'messaging'
   */
  readonly namespace?: string;
  /** @deprecated The older name of {@link namespace}: still works, told once per process. */
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

/** The Redis Cluster of {@link RedisStreamsBackendOptions.cluster}. */
export interface RedisClusterOptions {
  /** Addresses of some of the cluster's nodes (at least one), e.g. `['redis://10.0.0.1:6379']`. */
  readonly nodes: readonly string[];
}

/** {@link RedisStreamsBackendOptions.waitForReplicas}. */
export interface RedisWaitForReplicas {
  /** How many replicas must have a message before its publish resolves (1 or more). */
  readonly replicas: number;
  /** How long a `WAIT` waits for them; below `commandTimeoutMs`. */
  readonly timeoutMs: number;
}

/** {@link RedisStreamsBackendOptions} with every default applied. */
export interface ResolvedRedisOptions {
  /** The server's URL, or the first node's on a cluster (for logs and errors). */
  readonly url: string;
  readonly cluster?: RedisClusterOptions;
  readonly waitForReplicas?: RedisWaitForReplicas;
  readonly tls?: ResolvedTlsOptions;
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
  'cluster',
  'waitForReplicas',
  'tls',
  'namespace',
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
  const cluster = resolveCluster(o.cluster, o.url);
  const url = cluster?.nodes[0] ?? o.url ?? d.url;
  validateUrl(url);
  const prefix = namespaceOption(o, 'prefix', WHERE) ?? d.prefix;
  if (
    typeof prefix !== 'string' ||
    prefix.length > 100 ||
    !/^[A-Za-z0-9_.-]*(\{[A-Za-z0-9_.-]+\}[A-Za-z0-9_.-]*)?$/.test(prefix) ||
    prefix.length === 0
  ) {
    throw new MessagingConfigError(
      `${WHERE}: namespace ${JSON.stringify(prefix)} is not valid. Use 1 to 100 letters, digits, '.', '-' or '_' (no ':', which separates the parts of a key), with at most one hash tag such as '{shop}'.`,
    );
  }
  if (cluster && hashTagOf(prefix) === undefined) {
    throw new MessagingConfigError(
      `${WHERE}: on a Redis Cluster the prefix must carry a hash tag, so that every key of the prefix hashes to one slot (the scripts touch several keys at once): use prefix '{${prefix}}' instead of '${prefix}'.`,
    );
  }
  const commandTimeoutMs = checkInteger(
    o.commandTimeoutMs,
    d.commandTimeoutMs,
    `${WHERE}: commandTimeoutMs`,
    100,
  );
  const claimIdleMs = checkInteger(o.claimIdleMs, d.claimIdleMs, `${WHERE}: claimIdleMs`, 100);
  const blockMs = checkInteger(o.blockMs, d.blockMs, `${WHERE}: blockMs`, 10, 60_000);
  return {
    url,
    ...(cluster && { cluster }),
    ...(o.waitForReplicas !== undefined && {
      waitForReplicas: resolveWait(o.waitForReplicas, commandTimeoutMs),
    }),
    tls: resolveRedisTls(o.tls, url, redactCredentials(url), WHERE),
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
    commandTimeoutMs,
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

function resolveCluster(
  cluster: RedisClusterOptions | undefined,
  url: string | undefined,
): RedisClusterOptions | undefined {
  if (cluster === undefined) return undefined;
  const example = "cluster: { nodes: ['redis://10.0.0.1:6379', 'redis://10.0.0.2:6379'] }";
  if (url !== undefined) {
    throw new MessagingConfigError(
      `${WHERE}: give either url (one server) or cluster (a Redis Cluster), not both: drop url and list the nodes in ${example}.`,
    );
  }
  const nodes = (cluster as { nodes?: unknown } | null)?.nodes;
  if (!Array.isArray(nodes) || nodes.length === 0) {
    throw new MessagingConfigError(
      `${WHERE}: cluster.nodes must list at least one node of the cluster, e.g. ${example}.`,
    );
  }
  for (const node of nodes as unknown[]) {
    validateUrl(node);
    const parsed = new URL(node);
    const db =
      parsed.pathname.length > 1 ? parsed.pathname.slice(1) : parsed.searchParams.get('db');
    if (db !== null && db !== '0') {
      throw new MessagingConfigError(
        `${WHERE}: cluster node '${redactCredentials(node)}' selects database ${db}, but a Redis Cluster has only database 0: remove '/${db}' from the URL.`,
      );
    }
  }
  const schemes = new Set((nodes as string[]).map((node) => new URL(node).protocol));
  if (schemes.size > 1) {
    throw new MessagingConfigError(
      `${WHERE}: cluster.nodes mixes redis:// and rediss:// URLs: use one scheme for every node.`,
    );
  }
  return { nodes: [...(nodes as string[])] };
}

function resolveWait(wait: RedisWaitForReplicas, commandTimeoutMs: number): RedisWaitForReplicas {
  const example = 'waitForReplicas: { replicas: 1, timeoutMs: 1000 }';
  if (typeof wait !== 'object' || wait === null) {
    throw new MessagingConfigError(
      `${WHERE}: waitForReplicas must be an object such as ${example}.`,
    );
  }
  const replicas = checkInteger(
    wait.replicas ?? null,
    0,
    `${WHERE}: waitForReplicas.replicas`,
    1,
    100,
  );
  const timeoutMs = checkInteger(
    wait.timeoutMs ?? null,
    0,
    `${WHERE}: waitForReplicas.timeoutMs`,
    1,
    commandTimeoutMs - 1,
  );
  return { replicas, timeoutMs };
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
      `${WHERE}: '${redactCredentials(url)}' is not a valid URL. Expected redis://[user:password@]host:6379[/db].`,
    );
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new MessagingConfigError(
      `${WHERE}: URL scheme '${parsed.protocol}' is not supported in '${redactCredentials(url)}'. Use redis:// or rediss:// (TLS).`,
    );
  }
  if (!parsed.hostname) {
    throw new MessagingConfigError(`${WHERE}: URL '${redactCredentials(url)}' has no host.`);
  }
}
