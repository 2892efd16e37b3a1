/**
 * Request/reply on Redis. Replies come over pub/sub: each backend instance subscribes (on its first
 * request) to the pattern `<prefix>:reply:<instance>:*`, and each request names its own channel under
 * it, so a reply reaches exactly the caller that waits for it; the waiting requests are kept in
 * {@link PendingRequests}. A reply is not stored: one sent while its requester is disconnected is
 * lost, and the request times out.
 *
 * A volatile request to a topic (the default) leaves no stream entry: `REQUEST_SCRIPT` sends it to
 * each route its bindings match that an instance consumes now (published to the only instance, or
 * pushed to the list its instances share; see `redis-request-source.ts`); none: `UnroutableError`
 * at once. The bindings are those cached by
 * `RedisRoutes`, checked against the routing generation in the same script, and read again when it
 * moved. A durable request, or one to a named queue, is a stream entry like an event.
 */
import type { Redis } from 'ioredis';
import type {
  BackendRequestOptions,
  IncomingReply,
  OutgoingMessage,
} from '../../backend/broker-backend.interface';
import { PendingRequests } from '../../backend/pending-requests';
import { PublishFailedError, UnroutableError } from '../../errors/messaging.errors';
import { coalesceWrites } from './redis-connection';
import { BINDINGS_SCRIPT, REQUEST_SCRIPT, REQUEST_SCRIPT_SHARDED } from './redis-message-scripts';
import { publishFailure } from './redis-publisher';
import type { RedisPubSub } from './redis-pubsub';
import { decodeReply, requestEntry } from './redis-request-entries';
import type { BindingsSnapshot, RedisRoutes } from './redis-routes';
import { runScript } from './redis-scripts';
import type { RedisKeys } from './redis-topology';

/** Times a volatile request reads the bindings again because they changed meanwhile, at most. */
const MAX_BINDING_READS = 5;

/** What the requester needs from its backend. */
export interface RedisRequesterContext {
  readonly keys: RedisKeys;
  readonly pubsub: RedisPubSub;
  readonly routes: RedisRoutes;
  /** The reply channels of this instance start with this. */
  readonly replyPrefix: string;
  readonly commandTimeoutMs: number;
  /** The command connection, connected (throws `BackendClosedError` otherwise). */
  command(): Redis;
  /** Sends a durable request: `message` with reply address `replyTo`, into a stream like an event. */
  sendDurable(message: OutgoingMessage, replyTo: string): Promise<void>;
}

export class RedisRequester {
  private readonly pending = new PendingRequests();
  private listening?: Promise<void>;
  private listens = false;
  private sent = 0;
  private reading?: Promise<BindingsSnapshot>;

  constructor(private readonly ctx: RedisRequesterContext) {}

  /**
   * Sends a request and resolves with the first reply on its channel; rejects with
   * `RequestTimeoutError` after `timeoutMs`, `UnroutableError` when nobody receives it, or with what
   * sending it failed with.
   */
  request(message: OutgoingMessage, options: BackendRequestOptions): Promise<IncomingReply> {
    const key = (++this.sent).toString(36);
    const request = this.pending.add(key, message.topic ?? message.queue ?? '', options.timeoutMs);
    const replyTo = `${this.ctx.replyPrefix}${key}`;
    const send = (): Promise<void> =>
      options.durable || message.topic === undefined
        ? this.ctx.sendDurable(message, replyTo)
        : this.sendVolatile(message, message.topic, replyTo, options.timeoutMs);
    (this.listens ? send() : this.listen().then(send)).catch((error: Error) =>
      this.pending.fail(request, error),
    );
    return request.promise;
  }

  /** Fails every pending request with `error()`. */
  close(error: () => Error): void {
    this.pending.failAll(error);
  }

  private async sendVolatile(
    message: OutgoingMessage,
    topic: string,
    replyTo: string,
    timeoutMs: number,
  ): Promise<void> {
    const command = this.ctx.command();
    let bindings = this.ctx.routes.snapshot ?? (await this.readBindings(command));
    const entry = requestEntry(message, topic, replyTo);
    for (let reads = 1; ; reads++) {
      coalesceWrites(command);
      const reached = Number(
        await runScript(
          command,
          this.ctx.keys.sharded ? REQUEST_SCRIPT_SHARDED : REQUEST_SCRIPT,
          1,
          this.ctx.keys.slotKey,
          this.ctx.keys.prefix,
          this.ctx.keys.db,
          bindings.generation,
          timeoutMs,
          entry,
          ...bindings.queuesOf(topic),
        ).catch((error: Error) => {
          throw publishFailure(error, `topic '${topic}'`, this.ctx.commandTimeoutMs);
        }),
      );
      if (reached > 0) return;
      if (reached === 0) throw new UnroutableError(topic);
      // The bindings changed since they were read (a route was bound): read them again.
      if (reads > MAX_BINDING_READS) {
        throw new PublishFailedError(
          `RedisStreamsBackend: the request to topic '${topic}' was not sent: the bindings changed ${reads} times while it was being sent. Send it again.`,
        );
      }
      bindings = await this.readBindings(command);
    }
  }

  /** Reads the bindings and their generation (one read at a time, shared by the requests waiting). */
  private readBindings(command: Redis): Promise<BindingsSnapshot> {
    this.reading ??= runScript(
      command,
      BINDINGS_SCRIPT,
      1,
      this.ctx.keys.slotKey,
      this.ctx.keys.prefix,
    )
      .then((reply) => {
        const [generation, ...flat] = reply as string[];
        return this.ctx.routes.setBindings(String(generation), flat);
      })
      .finally(() => (this.reading = undefined));
    return this.reading;
  }

  private listen(): Promise<void> {
    this.listening ??= this.ctx.pubsub
      .psubscribe(`${this.ctx.replyPrefix}*`, (channel, message) => this.onReply(channel, message))
      .then(
        () => {
          this.listens = true;
        },
        (error: unknown) => {
          this.listening = undefined;
          throw error;
        },
      );
    return this.listening;
  }

  private onReply(channel: string, message: string): void {
    const reply = decodeReply(message);
    if (reply) this.pending.settle(channel.slice(this.ctx.replyPrefix.length), reply);
  }
}
