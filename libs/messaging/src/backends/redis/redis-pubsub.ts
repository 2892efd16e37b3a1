/**
 * The pub/sub connection of one {@link RedisStreamsBackend} instance, opened on first use: the
 * pattern of its reply channels (`<prefix>:reply:<instance>:*`, on its first request) and the channel
 * of each route it serves volatile requests for (`<prefix>:rq:<db>:<queue>`, while subscribed). Being
 * subscribed to a route's channel is what makes the instance count as consuming the route now:
 * Redis drops the subscription with the connection, so a crashed instance stops counting at once.
 * ioredis reconnects and subscribes again by itself; the routes are then rung (an empty message), to
 * take what waits in their lists.
 */
import type { Redis } from 'ioredis';

/** An empty message: "look at the list" (see `REQUEST_SCRIPT`). */
const RING = Buffer.alloc(0);

export class RedisPubSub {
  private redis?: Redis;
  private connecting?: Promise<Redis>;
  private closed = false;
  private readonly channels = new Map<string, (message: Buffer) => void>();
  private readonly patterns = new Map<string, (channel: string, message: string) => void>();

  constructor(
    private readonly create: () => Redis,
    private readonly connect: (redis: Redis) => Promise<void>,
  ) {}

  /** Calls `listener` with every message on `channel` (as bytes), once Redis confirmed. */
  async subscribe(channel: string, listener: (message: Buffer) => void): Promise<void> {
    const redis = await this.connection();
    this.channels.set(channel, listener);
    await redis.subscribe(channel);
  }

  /**
   * Stops listening to `channel`; resolves once Redis confirmed (nothing is counted for it since).
   * While reconnecting, ioredis sends it after subscribing again to what it knew.
   */
  async unsubscribe(channel: string): Promise<void> {
    if (!this.channels.delete(channel) || this.closed) return;
    await this.redis?.unsubscribe(channel);
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

  /** Closes the connection (idempotent). */
  async close(): Promise<void> {
    this.closed = true;
    this.channels.clear();
    this.patterns.clear();
    await this.connecting?.catch(() => undefined);
    const redis = this.redis;
    this.redis = undefined;
    await redis?.quit().catch(() => redis.disconnect());
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
    redis.on('ready', () => {
      if (!connected) return;
      for (const listener of this.channels.values()) listener(RING);
    });
    await this.connect(redis);
    connected = true;
    if (this.closed) {
      redis.disconnect();
      throw new Error('the pub/sub connection was closed while connecting');
    }
    return redis;
  }
}
