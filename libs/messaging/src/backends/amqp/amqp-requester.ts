import type { Channel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { BackendEventHub } from '../../backend/backend-events';
import type { IncomingReply, OutgoingMessage } from '../../backend/broker-backend.interface';
import { type PendingRequest, PendingRequests } from '../../backend/pending-requests';
import {
  BackendClosedError,
  PublishFailedError,
  UnroutableError,
} from '../../errors/messaging.errors';
import type { ResolvedAmqpOptions } from './amqp-backend.options';
import { sanitizeError, type AmqpConnectionManager } from './amqp-connection';
import type { PublishCommand, PublisherChannelHooks } from './amqp-publish-command';
import { requestExchangeName } from './amqp-topology';

/** RabbitMQ's direct reply-to pseudo-queue: no reply queue to declare or delete. */
export const DIRECT_REPLY_TO = 'amq.rabbitmq.reply-to';

/**
 * Request/reply over direct reply-to, whose pseudo-queue must be consumed (no-ack) on the channel
 * that publishes the requests:
 *
 * | request  | channel                                   | published                                                 |
 * | -------- | ----------------------------------------- | --------------------------------------------------------- |
 * | volatile | a plain channel of its own, opened by the first request on each connection | to `<exchange>.requests` (a named queue: straight to it), non-persistent, `mandatory`, expiring with its timeout, unconfirmed: a `basic.return` fails it at once with `UnroutableError` |
 * | durable  | the publisher's confirm channel ({@link opened} hooks into each) | to the main exchange like an event: persistent, confirmed |
 *
 * With `assertTopology: false` every request is durable: the request exchange and queues are ours
 * to declare. A request whose channel closes before its reply fails: the reply could only have come
 * back there.
 */
export class AmqpRequester implements PublisherChannelHooks {
  private readonly pending = new PendingRequests();
  /** The channel of volatile requests, once open. */
  private channel?: Channel;
  private opening?: Promise<Channel>;
  private closing = false;

  constructor(
    private readonly connection: AmqpConnectionManager,
    private readonly options: ResolvedAmqpOptions,
    private readonly hub: BackendEventHub,
  ) {}

  /** Starts consuming replies on a new publisher channel (durable requests). */
  async opened(channel: ConfirmChannel): Promise<void> {
    await channel.consume(DIRECT_REPLY_TO, (msg) => this.onReply(msg), { noAck: true });
  }

  /** Fails the requests whose replies were to come on `channel`. */
  closed(channel: Channel): void {
    this.pending.failWhere(
      (tag) => tag === channel,
      () =>
        new PublishFailedError(
          'The channel to RabbitMQ the reply was to come on closed while waiting for it; the request may or may not have been handled',
        ),
    );
  }

  /**
   * Sends `message` as a request and resolves with the first reply carrying its correlation id
   * (`correlationId`, or `messageId` when there is none). A durable request is written by
   * `publishDurable` (the publisher: confirmed, and resent after a lost channel only before it was
   * written) as `toCommand` builds it.
   */
  request(
    message: OutgoingMessage,
    timeoutMs: number,
    durable: boolean,
    toCommand: (message: OutgoingMessage) => Omit<PublishCommand, 'timeoutMs' | 'onWritten'>,
    publishDurable: (command: PublishCommand) => Promise<void>,
  ): Promise<IncomingReply> {
    if (this.closing) {
      return Promise.reject(new BackendClosedError('AmqpBackend is closed: cannot send a request'));
    }
    const correlationId = message.correlationId ?? message.messageId;
    let request: PendingRequest;
    try {
      request = this.pending.add(correlationId, message.queue ?? message.topic ?? '', timeoutMs);
    } catch (error) {
      // One with this correlation id waits already: its reply could not be told apart.
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    if (durable || !this.options.assertTopology) {
      const base = toCommand({ ...message, correlationId });
      publishDurable({
        ...base,
        // No `expiration`: a work queue dead-letters what expires. The deadline header lets the
        // server skip a request whose caller stopped waiting.
        properties: { ...base.properties, replyTo: DIRECT_REPLY_TO, correlationId },
        timeoutMs,
        once: true,
        onWritten: (channel) => {
          request.tag = channel;
        },
      }).catch((error: Error) => this.pending.fail(request, error));
    } else {
      const ch = this.channel;
      if (ch) this.write(ch, request, message, timeoutMs);
      else {
        this.open().then(
          (opened) => this.write(opened, request, message, timeoutMs),
          (error: Error) => this.pending.fail(request, error),
        );
      }
    }
    return request.promise;
  }

  /**
   * Fails every pending request with `BackendClosedError` and closes the request channel (one still
   * opening closes itself when it is open).
   */
  async close(): Promise<void> {
    this.closing = true;
    this.pending.failAll(
      () => new BackendClosedError('AmqpBackend closed before the reply arrived'),
    );
    const ch = this.channel;
    this.channel = undefined;
    await ch?.close().catch(() => undefined);
  }

  /** Writes a volatile request on `ch`; what RabbitMQ cannot route comes back as a return. */
  private write(
    ch: Channel,
    request: PendingRequest,
    message: OutgoingMessage,
    timeoutMs: number,
  ): void {
    const queue = message.queue;
    try {
      ch.publish(
        queue === undefined ? requestExchangeName(this.options.exchange) : '',
        queue ?? (message.topic as string),
        message.body,
        {
          mandatory: true,
          // Dropped by RabbitMQ once its caller gave up; not to a named queue, which may dead-letter
          // what expires (the deadline header lets its consumer skip it).
          expiration: queue === undefined ? timeoutMs : undefined,
          replyTo: DIRECT_REPLY_TO,
          correlationId: request.key,
          messageId: message.messageId,
          contentType: message.contentType,
          contentEncoding: message.contentEncoding,
          timestamp: Math.floor(message.timestamp / 1000),
          headers: message.headers,
        },
      );
      request.tag = ch;
    } catch (error) {
      this.pending.fail(
        request,
        new PublishFailedError(
          `Could not send the request to '${request.target}': ${sanitizeError(error).message}`,
        ),
      );
    }
  }

  /** The channel of volatile requests, opened on the current connection (once for all callers). */
  private open(): Promise<Channel> {
    this.opening ??= this.openChannel().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private async openChannel(): Promise<Channel> {
    const conn = await this.connection.waitForConnection(this.options.publishTimeoutMs);
    const ch = await conn.createChannel();
    ch.on('error', (error: unknown) =>
      this.hub.emitError(sanitizeError(error, 'AMQP request channel')),
    );
    ch.on('return', (msg: ConsumeMessage) => this.onReturn(msg));
    ch.on('close', () => {
      if (this.channel === ch) this.channel = undefined;
      this.closed(ch);
    });
    try {
      await ch.consume(DIRECT_REPLY_TO, (msg) => this.onReply(msg), { noAck: true });
    } catch (error) {
      await ch.close().catch(() => undefined);
      throw sanitizeError(error, 'opening the AMQP request channel');
    }
    if (this.closing) {
      await ch.close().catch(() => undefined);
      throw new BackendClosedError('AmqpBackend is closed: cannot send a request');
    }
    this.channel = ch;
    return ch;
  }

  /** RabbitMQ returned a volatile request: no instance consumes a route it matches now. */
  private onReturn(msg: ConsumeMessage): void {
    const correlationId = msg.properties.correlationId as string | undefined;
    if (correlationId === undefined) return;
    this.pending.reject(correlationId, (request) =>
      msg.fields.exchange === ''
        ? new UnroutableError(`queue ${request.target}`, 'durable-request')
        : new UnroutableError(request.target, 'request'),
    );
  }

  private onReply(msg: ConsumeMessage | null): void {
    if (!msg) return;
    const correlationId = msg.properties.correlationId as string | undefined;
    if (correlationId === undefined) return;
    this.pending.settle(correlationId, {
      body: msg.content,
      headers: msg.properties.headers ?? NO_HEADERS,
      contentType: msg.properties.contentType as string | undefined,
      contentEncoding: msg.properties.contentEncoding as string | undefined,
    });
  }
}

const NO_HEADERS: Readonly<Record<string, unknown>> = Object.freeze({});
