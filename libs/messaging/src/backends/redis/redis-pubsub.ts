/**
 * The pub/sub connection of one {@link RedisStreamsBackend} instance, opened on first use: the
 * pattern of its reply channels (`<prefix>:reply:<instance>:*`, on its first request) and the channel
 * of each route it serves volatile requests for (`<prefix>:rq:<db>:<queue>`, while subscribed). Being
 * subscribed to a route's channel is what makes the instance count as consuming the route now:
 * Redis drops the subscription with the connection, so a crashed instance stops counting at once.
 * ioredis reconnects and subscribes again by itself; the routes are then rung (an empty message), to
 * take what waits in their lists.
 *
 * A channel's listener outlives its `unsubscribe()` until Redis confirmed it: until then the instance
 * is still counted, so a request may still be published to it (sent before the `UNSUBSCRIBE`, or after
 * a reconnection, where ioredis subscribes again before it sends an `UNSUBSCRIBE` it queued), and the
 * listener (its route cancelled) gives it back for another instance. Nothing is ever received with no
 * listener to take it.
 *
 * On a Redis Cluster (`sharded`) the route channels are sharded channels (`SSUBSCRIBE`): ioredis keeps
 * that subscription on the master of the channel's slot, the prefix's (`redis-cluster.ts`), and moves
 * it to the new master after a failover, when the routes are rung again. The reply pattern stays a
 * plain `PSUBSCRIBE` (the cluster bus carries every `PUBLISH` to every node).
 */
import type { Redis } from 'ioredis';

/** An empty message: "look at the list" (see `REQUEST_SCRIPT`). */
const RING = Buffer.alloc(0);

/** What a channel's subscriber is called with: each message, as bytes. */
export type ChannelListener = (message: Buffer) => void;

export class RedisPubSub {
  private redis?: Redis;
  private connecting?: Promise<Redis>;
  private closed = false;
  private readonly channels = new Map<string, ChannelListener>();
  private readonly patterns = new Map<string, (channel: string, message: string) => void>();

  /**
   * @param waitMs the longest `unsubscribe()` and `close()` wait for Redis (`commandTimeoutMs`): this
   *   connection has no command timeout of its own (a subscription is no request to time out).
   */
  constructor(
    private readonly create: () => Redis,
    private readonly connect: (redis: Redis) => Promise<void>,
    private readonly waitMs: number,
    private readonly sharded = false,
  ) {}

  /**
   * Calls `listener` with every message on `channel`, once Redis confirmed; when the subscription
   * fails (the connection closed), `listener` is not kept.
   */
  async subscribe(channel: string, listener: ChannelListener): Promise<void> {
    const redis = await this.connection();
    this.channels.set(channel, listener);
    try {
      await (this.sharded ? redis.ssubscribe(channel) : redis.subscribe(channel));
    } catch (error) {
      this.release(channel, listener);
      throw error;
    }
  }

  /**
   * Stops listening to `channel` with `listener` (nothing when another listener replaced it since).
   * `listener` still receives what Redis sends before it confirmed, and is dropped then (unless a
   * subscription of the channel came meanwhile). Resolves once Redis confirmed, or without waiting
   * for it when the connection is not ready (the `UNSUBSCRIBE` waits in ioredis's queue: Redis,
   * unreachable, counts nobody meanwhile) or after `waitMs`.
   */
  unsubscribe(channel: string, listener: ChannelListener): Promise<void> {
    const redis = this.redis;
    if (this.channels.get(channel) !== listener) return Promise.resolve();
    if (this.closed || redis === undefined) {
      this.release(channel, listener);
      return Promise.resolve();
    }
    // Rejected only when the connection ended: no subscription is left either way.
    const release = () => this.release(channel, listener);
    const confirmed = (
      this.sharded ? redis.sunsubscribe(channel) : redis.unsubscribe(channel)
    ).then(release, release);
    return redis.status === 'ready' ? within(this.waitMs, confirmed) : Promise.resolve();
  }

  /** Calls `listener` with each message of a channel matching `pattern`, once Redis confirmed. */
  async psubscribe(
    pattern: string,
    listener: (channel: string, message: string) => void,
  ): Promise<void> {
    const redis = await this.connection();
    this.patterns.set(pattern, listener);
    await redis.psubscribe(pattern);
  }

  /**
   * Closes the connection (idempotent): `QUIT` when it is ready (at most `waitMs`), else at once
   * (nothing is waited for: what was queued for Redis is dropped).
   */
  async close(): Promise<void> {
    this.closed = true;
    this.channels.clear();
    this.patterns.clear();
    // Still connecting (Redis unreachable): given up now, rather than after connectTimeoutMs.
    if (this.redis !== undefined && this.redis.status !== 'ready') this.redis.disconnect();
    await this.connecting?.catch(() => undefined);
    const redis = this.redis;
    this.redis = undefined;
    if (redis === undefined) return;
    if (redis.status === 'ready')
      await within(
        this.waitMs,
        redis.quit().catch(() => undefined),
      );
    if (redis.status !== 'end') redis.disconnect();
  }

  private release(channel: string, listener: ChannelListener): void {
    if (this.channels.get(channel) === listener) this.channels.delete(channel);
  }

  private connection(): Promise<Redis> {
    if (this.closed) return Promise.reject(new Error('the pub/sub connection is closed'));
    this.connecting ??= this.open().catch((error: unknown) => {
      this.connecting = undefined;
      throw error;
    });
    return this.connecting;
  }

  private async open(): Promise<Redis> {
    const redis = this.create();
    this.redis = redis;
    redis.on('error', () => undefined); // ioredis reconnects and subscribes again
    redis.on(
      this.sharded ? 'smessageBuffer' : 'messageBuffer',
      (channel: Buffer, message: Buffer) => this.channels.get(channel.toString())?.(message),
    );
    redis.on('pmessage', (pattern: string, channel: string, message: string) =>
      this.patterns.get(pattern)?.(channel, message),
    );
    let connected = false;
    const ring = () => {
      if (!connected) return;
      for (const listener of this.channels.values()) listener(RING);
    };
    redis.on('ready', ring);
    // A cluster's sharded subscriptions, made again on the slot's (new) master.
    if (this.sharded) redis.on('subscribersReady', ring);
    try {
      await this.connect(redis);
    } catch (error) {
      if (this.redis === redis) this.redis = undefined;
      throw error;
    }
    connected = true;
    if (this.closed) {
      redis.disconnect();
      throw new Error('the pub/sub connection was closed while connecting');
    }
    return redis;
  }
}

/** Resolves when `promise` settles or after `ms`, whichever comes first. */
function within(ms: number, promise: Promise<unknown>): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    promise.then(done, done);
  });
}
