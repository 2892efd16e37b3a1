/**
 * Redis connections of {@link RedisStreamsBackend}: `ioredis` loaded on demand, one factory for the
 * command connection, the per-subscription reader connections and the pub/sub connection (each a
 * `Cluster` on a Redis Cluster, see `redis-cluster.ts`), and a bounded first connect.
 */
import type { ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { loadBrokerClient } from '../../backend/broker-client';
import { BrokerConnectError } from '../../backend/connect-error';
import { redactCredentials } from '../../backend/redact-credentials';
import type { ResolvedRedisOptions } from './redis-backend.options';
import { tlsFailureHint, tlsResetHint } from './redis-tls';

/** Redis could not be reached in time by `connect()`. */
export class RedisConnectError extends BrokerConnectError {}

/** The `ioredis` module, as this backend uses it. */
export type IoRedisModule = {
  Redis: new (url: string, options: RedisOptions) => Redis;
  Cluster: new (
    nodes: Array<{ host: string; port: number }>,
    options: ClusterOptions,
  ) => Redis & { isCluster: true };
};

/** Loads `ioredis` on demand so that apps on another backend run without it. */
export function loadIoRedis(): IoRedisModule {
  return loadBrokerClient('RedisStreamsBackend', ['ioredis'])[0] as IoRedisModule;
}

/** Reconnection backoff: 100 ms, 200 ms, ... up to 2 s, forever (the backend reports its status). */
export function reconnectDelay(attempt: number): number {
  return Math.min(2_000, 100 * attempt);
}

/**
 * The database a Redis URL selects, as ioredis reads it: the path (`redis://host:6379/2`), else the
 * `db` query parameter, else 0.
 */
export function databaseOf(url: string): number {
  const parsed = new URL(url);
  const db = parsed.pathname.length > 1 ? parsed.pathname.slice(1) : parsed.searchParams.get('db');
  const index = Number.parseInt(db ?? '0', 10);
  return Number.isNaN(index) ? 0 : index;
}

/**
 * A new connection, not yet connected. `blocking` connections (the readers) have no command timeout:
 * their `XREADGROUP BLOCK` waits longer than any timeout would allow. On a Redis Cluster it is an
 * `ioredis` `Cluster` (typed as `Redis`: it has the same commands; what must reach one node goes
 * through `nodeFor()`).
 */
export function createConnection(
  ioredis: IoRedisModule,
  options: ResolvedRedisOptions,
  role: string,
  blocking: boolean,
): Redis {
  const redisOptions: RedisOptions = {
    lazyConnect: true,
    ...(options.tls && { tls: { ...options.tls } }),
    connectionName: `${options.connectionName ?? 'nest-messaging'}:${role}`,
    connectTimeout: Math.min(options.connectTimeoutMs, 10_000),
    commandTimeout: blocking ? undefined : options.commandTimeoutMs,
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: reconnectDelay,
    // After a failed connect, ioredis still waits this long for the (already closed) socket to close.
    disconnectTimeout: 500,
  };
  if (options.cluster === undefined) return new ioredis.Redis(options.url, redisOptions);
  const first = new URL(options.cluster.nodes[0]);
  return new ioredis.Cluster(
    options.cluster.nodes.map((node) => {
      const url = new URL(node);
      return { host: url.hostname, port: Number(url.port || 6379) };
    }),
    {
      lazyConnect: true,
      redisOptions: {
        ...redisOptions,
        ...(first.username && { username: decodeURIComponent(first.username) }),
        ...(first.password && { password: decodeURIComponent(first.password) }),
        ...(first.protocol === 'rediss:' && { tls: { ...options.tls } }),
      },
      clusterRetryStrategy: reconnectDelay,
      // A failover: the slot's new master is learnt from a MOVED reply or the next refresh.
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      retryDelayOnTryAgain: 100,
      retryDelayOnMoved: 0,
      slotsRefreshTimeout: 2_000,
      slotsRefreshInterval: 1_000,
      maxRedirections: 64,
      enableReadyCheck: true,
    },
  );
}

/**
 * On a Redis Cluster: a connection to one node (`host:port`) with the cluster's credentials and TLS,
 * not reconnecting by itself (its owner follows the slot to its next master instead): the route
 * channels' connection (`redis-pubsub.ts`).
 */
export function createNodeConnection(
  ioredis: IoRedisModule,
  options: ResolvedRedisOptions,
  role: string,
  at: string,
): Redis {
  const first = new URL((options.cluster?.nodes ?? [options.url])[0]);
  const url = new URL(`${first.protocol}//${at}`);
  url.username = first.username;
  url.password = first.password;
  return new ioredis.Redis(url.toString(), {
    lazyConnect: true,
    ...((options.tls || first.protocol === 'rediss:') && { tls: { ...options.tls } }),
    connectionName: `${options.connectionName ?? 'nest-messaging'}:${role}`,
    connectTimeout: Math.min(options.connectTimeoutMs, 10_000),
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: () => null,
    disconnectTimeout: 500,
  });
}

/**
 * Connects `redis`, resolving once it is ready; rejects with {@link RedisConnectError} naming the
 * URL (password hidden) and the last error after `timeoutMs`, and stops it from retrying then. A TLS
 * handshake that failed for good (a certificate refused on either side: retrying will not change it)
 * rejects at once, saying which `tls` option to set.
 */
export async function connectWithin(
  redis: Redis,
  options: ResolvedRedisOptions,
  timeoutMs: number,
): Promise<void> {
  if (redis.status === 'ready') return;
  const url = redactCredentials(options.url);
  let lastError: Error | undefined;
  let onError: ((error: Error) => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (error: RedisConnectError) => {
        clearTimeout(timer);
        redis.off('ready', onReady);
        redis.off('end', onEnd);
        redis.disconnect();
        reject(error);
      };
      const timer = setTimeout(() => {
        fail(
          new RedisConnectError(
            `RedisStreamsBackend could not connect to ${url} within ${timeoutMs} ms` +
              (lastError ? ` (${lastError.message})` : '') +
              '. Check that Redis runs there and that the url option is right.' +
              tlsResetHint(lastError, options.url, options.tls),
          ),
        );
      }, timeoutMs);
      onError = (error: Error) => {
        lastError = error;
        const hint = tlsFailureHint(error, options.tls);
        if (hint === undefined) return;
        fail(
          new RedisConnectError(
            `RedisStreamsBackend could not connect to ${url}: the TLS handshake failed (${error.message.trim()}). ${hint}`,
            { cause: error },
          ),
        );
      };
      const onReady = () => {
        clearTimeout(timer);
        redis.off('end', onEnd);
        resolve();
      };
      // Disconnected meanwhile (a close while a subscription starts): no need to wait for the timeout.
      const onEnd = () => {
        clearTimeout(timer);
        redis.off('ready', onReady);
        reject(
          new RedisConnectError('RedisStreamsBackend: the connection was closed while connecting'),
        );
      };
      redis.on('error', onError);
      redis.once('ready', onReady);
      redis.once('end', onEnd);
      if (redis.status === 'wait') redis.connect().catch((error: Error) => (lastError = error));
    });
  } finally {
    if (onError) redis.off('error', onError);
  }
}

/**
 * Makes the commands written to `redis` in this turn of the event loop leave in one write: the first
 * one corks the socket, which is uncorked once the turn's callbacks ran (`process.nextTick`). A
 * publisher with a thousand messages in flight then makes one system call per turn instead of one per
 * message (ioredis writes each command as it comes); the order of commands, and of their replies, is
 * unchanged. Does nothing while the connection is not ready (ioredis queues commands itself then).
 */
export function coalesceWrites(redis: Redis): void {
  const stream = redis.stream;
  // A Cluster has no stream of its own (its commands go to a connection per node): left as it is.
  if (redis.status !== 'ready' || stream === undefined || stream.writableCorked > 0) return;
  stream.cork();
  process.nextTick(uncork, stream);
}

function uncork(stream: Redis['stream']): void {
  stream.uncork();
}
