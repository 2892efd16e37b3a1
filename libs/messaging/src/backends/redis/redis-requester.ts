/**
 * Request/reply over Redis pub/sub: each backend instance subscribes (lazily, on its first request)
 * to the pattern `<prefix>:reply:<instance>:*`, and each request names its own channel under it, so a
 * reply reaches exactly the caller that waits for it. A reply is not stored: one sent while its
 * requester is disconnected is lost, and the request times out.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { IncomingReply } from '../../backend/broker-backend.interface';
import { RequestTimeoutError } from '../../errors/messaging.errors';

interface PendingRequest {
  settle(error: Error | undefined, reply?: IncomingReply): void;
}

export class RedisRequester {
  private readonly pending = new Map<string, PendingRequest>();
  private subscriber?: Redis;
  private listening?: Promise<void>;

  constructor(
    private readonly createConnection: () => Redis,
    private readonly channelPrefix: string,
    private readonly connect: (redis: Redis) => Promise<void>,
    private readonly decode: (message: string) => IncomingReply | undefined,
  ) {}

  /**
   * Sends a request with `send(replyTo)` and resolves with the first reply on its channel, or rejects
   * with `RequestTimeoutError` after `timeoutMs` (or with what `send` rejected with).
   */
  async request(
    timeoutMs: number,
    target: string,
    send: (replyTo: string) => Promise<void>,
  ): Promise<IncomingReply> {
    await this.listen();
    const id = randomUUID();
    return new Promise<IncomingReply>((resolve, reject) => {
      const timer = setTimeout(
        () => request.settle(new RequestTimeoutError(target, timeoutMs)),
        timeoutMs,
      );
      const request: PendingRequest = {
        settle: (error, reply) => {
          if (!this.pending.delete(id)) return;
          clearTimeout(timer);
          if (error) reject(error);
          else resolve(reply as IncomingReply);
        },
      };
      this.pending.set(id, request);
      send(`${this.channelPrefix}${id}`).catch((error: Error) => request.settle(error));
    });
  }

  /** Fails every pending request with `error` and closes the reply connection. */
  async close(error: Error): Promise<void> {
    for (const request of [...this.pending.values()]) request.settle(error);
    await this.listening?.catch(() => undefined);
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
  }

  private listen(): Promise<void> {
    this.listening ??= (async () => {
      const subscriber = this.createConnection();
      this.subscriber = subscriber;
      subscriber.on('error', () => undefined); // ioredis reconnects and subscribes again
      subscriber.on('pmessage', (_pattern: string, channel: string, message: string) =>
        this.onReply(channel, message),
      );
      await this.connect(subscriber);
      await subscriber.psubscribe(`${this.channelPrefix}*`);
    })().catch((error: unknown) => {
      this.listening = undefined;
      throw error;
    });
    return this.listening;
  }

  private onReply(channel: string, message: string): void {
    if (!channel.startsWith(this.channelPrefix)) return;
    const request = this.pending.get(channel.slice(this.channelPrefix.length));
    const reply = request && this.decode(message);
    if (request && reply) request.settle(undefined, reply);
  }
}
