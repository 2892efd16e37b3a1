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
 * On a Redis Cluster (`shards`) the route channels are sharded channels (`SSUBSCRIBE`), counted on the
 * master of the prefix's slot only (`redis-cluster.ts`): they are held on a connection of their own
 * to that master, which follows the slot: when it closes, or the slot has another master (checked
 * every second), a connection to the new master subscribes them again and the routes are rung. (Not
 * ioredis's `shardedSubscribers`: a reply that reaches one of its subscribers after it dropped it
 * is thrown as an uncaught exception.) The reply pattern stays a plain `PSUBSCRIBE` on the Cluster
 * (the cluster bus carries every `PUBLISH` to every node).
 */
import type { Redis } from 'ioredis';

/** An empty message: "look at the list" (see `REQUEST_SCRIPT`). */
const RING = Buffer.alloc(0);

/** What a channel's subscriber is called with: each message, as bytes. */
export type ChannelListener = (message: Buffer) => void;

/** On a Redis Cluster: where the route channels live, and a connection there. */
export interface ShardedChannels {
  /** `host:port` of the master of the prefix's slot now, if known. */
  locate(): string | undefined;
  /** A new connection (not connected, not reconnecting by itself) to the node at `host:port`. */
  create(at: string): Redis;
}

/** How often the shard connection checks that its node still masters the slot. */
const SHARD_CHECK_MS = 1_000;

export class RedisPubSub {
  private redis?: Redis;
  private connecting?: Promise<Redis>;
  private closed = false;
  private readonly channels = new Map<string, ChannelListener>();
  private readonly patterns = new Map<string, (channel: string, message: string) => void>();
  /** On a cluster: the connection holding the route channels, to the slot's master at `shardAt`. */
  private shard?: Redis;
  private shardAt?: string;
  private shardConnecting?: Promise<Redis>;
  private shardTimer?: NodeJS.Timeout;
  private rehoming = false;

  /**
   * @param waitMs the longest `unsubscribe()` and `close()` wait for Redis (`commandTimeoutMs`): this
   *   connection has no command timeout of its own (a subscription is no request to time out).
   */
  constructor(
    private readonly create: () => Redis,
    private readonly connect: (redis: Redis) => Promise<void>,
    private readonly waitMs: number,
    private readonly shards?: ShardedChannels,
  ) {}

  /**
   * Calls `listener` with every message on `channel`, once Redis confirmed; when the subscription
   * fails (the connection closed), `listener` is not kept.
   */
  async subscribe(channel: string, listener: ChannelListener): Promise<void> {
    const redis = this.shards ? await this.shardConnection() : await this.connection();
    this.channels.set(channel, listener);
    try {
      await (this.shards ? redis.ssubscribe(channel) : redis.subscribe(channel));
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
    const redis = this.shards ? this.shard : this.redis;
    if (this.channels.get(channel) !== listener) return Promise.resolve();
    if (this.closed || redis === undefined) {
      this.release(channel, listener);
      return Promise.resolve();
    }
    // Rejected only when the connection ended: no subscription is left either way.
    const release = () => this.release(channel, listener);
    const confirmed = (this.shards ? redis.sunsubscribe(channel) : redis.unsubscribe(channel)).then(
      release,
      release,
    );
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
    clearInterval(this.shardTimer);
    await this.closeShard();
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
    redis.on('messageBuffer', (channel: Buffer, message: Buffer) =>
      this.channels.get(channel.toString())?.(message),
    );
    redis.on('pmessage', (pattern: string, channel: string, message: string) =>
      this.patterns.get(pattern)?.(channel, message),
    );
    let connected = false;
    const ring = () => {
      if (!connected) return;
      for (const listener of this.channels.values()) listener(RING);
    };
    if (!this.shards) redis.on('ready', ring);
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

  /** On a cluster: the connection to the slot's master that holds the route channels. */
  private shardConnection(): Promise<Redis> {
    if (this.closed) return Promise.reject(new Error('the pub/sub connection is closed'));
    this.shardConnecting ??= this.openShard().catch((error: unknown) => {
      this.shardConnecting = undefined;
      throw error;
    });
    return this.shardConnecting;
  }

  /** Tries the slot's master for at most `waitMs` (a failover may be under way). */
  private async openShard(): Promise<Redis> {
    const deadline = Date.now() + this.waitMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.tryShard();
      } catch (error) {
        if (this.closed || Date.now() >= deadline) throw error;
        await sleep(Math.min(500, 50 * attempt));
      }
    }
  }

  private async tryShard(): Promise<Redis> {
    const shards = this.shards as ShardedChannels;
    const at = shards.locate();
    if (at === undefined) throw new Error("the master of the prefix's hash slot is not known yet");
    const redis = shards.create(at);
    redis.on('error', (error: Error) => {
      // Redis unsubscribed it (the node no longer masters the slot): ioredis did not expect that.
      if (this.shard === redis && error.message.includes('Command queue state error'))
        this.rehome();
    });
    redis.on('smessageBuffer', (channel: Buffer, message: Buffer) =>
      this.channels.get(channel.toString())?.(message),
    );
    redis.once('end', () => {
      if (this.shard === redis) this.rehome();
    });
    await this.connect(redis);
    if (this.closed) {
      redis.disconnect();
      throw new Error('the pub/sub connection was closed while connecting');
    }
    this.shard = redis;
    this.shardAt = at;
    this.shardTimer ??= setInterval(() => {
      if (this.shard !== undefined && !this.rehoming && shards.locate() !== this.shardAt)
        this.rehome();
    }, SHARD_CHECK_MS).unref();
    return redis;
  }

  /**
   * The slot moved (a failover) or the connection dropped: a connection to the slot's master now
   * subscribes every route channel again, then the routes are rung (requests may wait in their lists).
   */
  private rehome(): void {
    if (this.closed || this.rehoming) return;
    this.rehoming = true;
    const old = this.shard;
    this.shard = undefined;
    this.shardConnecting = undefined;
    old?.disconnect();
    void (async () => {
      for (let attempt = 1; !this.closed; attempt++) {
        try {
          const redis = await this.shardConnection();
          const channels = [...this.channels.keys()];
          if (channels.length > 0) await redis.ssubscribe(...channels);
          // Unsubscribed meanwhile (released at once: there was no connection to wait for).
          const gone = channels.filter((channel) => !this.channels.has(channel));
          if (gone.length > 0) await redis.sunsubscribe(...gone);
          for (const listener of this.channels.values()) listener(RING);
          break;
        } catch {
          this.shard?.disconnect();
          this.shard = undefined;
          this.shardConnecting = undefined;
          await sleep(Math.min(1_000, 100 * attempt));
        }
      }
      this.rehoming = false;
    })();
  }

  private async closeShard(): Promise<void> {
    await this.shardConnecting?.catch(() => undefined);
    const shard = this.shard;
    this.shard = undefined;
    if (shard === undefined) return;
    if (shard.status === 'ready')
      await within(
        this.waitMs,
        shard.quit().catch(() => undefined),
      );
    if (shard.status !== 'end') shard.disconnect();
  }
}

/** Resolves after `ms`. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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
