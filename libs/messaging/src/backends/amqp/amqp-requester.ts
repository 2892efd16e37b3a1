import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { IncomingReply, OutgoingMessage } from '../../backend/broker-backend.interface';
import {
  BackendClosedError,
  PublishFailedError,
  RequestTimeoutError,
} from '../../errors/messaging.errors';
import type { PublishCommand, PublisherChannelHooks } from './amqp-publish-command';

/** RabbitMQ's direct reply-to pseudo-queue: no reply queue to declare or delete. */
export const DIRECT_REPLY_TO = 'amq.rabbitmq.reply-to';

interface PendingRequest {
  channel?: ConfirmChannel;
  settle(error: Error | undefined, reply?: IncomingReply): void;
}

/**
 * Request/reply over direct reply-to. The pseudo-queue must be consumed (no-ack) on the channel that
 * publishes the requests, so this hooks into the publisher's channel: {@link opened} starts the reply
 * consumer on each new publisher channel, and {@link closed} fails the requests written on a channel
 * that died (their replies can no longer arrive there).
 */
export class AmqpRequester implements PublisherChannelHooks {
  private readonly pending = new Map<string, PendingRequest[]>();

  /** Starts consuming replies on a new publisher channel. */
  async opened(channel: ConfirmChannel): Promise<void> {
    await channel.consume(DIRECT_REPLY_TO, (msg) => this.onReply(msg), { noAck: true });
  }

  /** Fails the requests whose replies were to come on `channel`. */
  closed(channel: ConfirmChannel): void {
    for (const list of [...this.pending.values()]) {
      for (const request of [...list]) {
        if (request.channel === channel) {
          request.settle(
            new PublishFailedError(
              'The channel to RabbitMQ the reply was to come on closed while waiting for it; the request may or may not have been handled',
            ),
          );
        }
      }
    }
  }

  /**
   * Publishes `message` with a reply address through `publish` and resolves with the first reply
   * carrying its correlation id (`correlationId`, or `messageId` when there is none).
   */
  request(
    message: OutgoingMessage,
    timeoutMs: number,
    toCommand: (message: OutgoingMessage) => Omit<PublishCommand, 'timeoutMs' | 'onWritten'>,
    publish: (command: PublishCommand) => Promise<void>,
  ): Promise<IncomingReply> {
    const correlationId = message.correlationId ?? message.messageId;
    const target = message.queue ?? message.topic ?? '';
    return new Promise<IncomingReply>((resolve, reject) => {
      const timer = setTimeout(
        () => request.settle(new RequestTimeoutError(target, timeoutMs)),
        timeoutMs,
      );
      const request: PendingRequest = {
        settle: (error, reply) => {
          if (!this.remove(correlationId, request)) return;
          clearTimeout(timer);
          if (error) reject(error);
          else resolve(reply as IncomingReply);
        },
      };
      const list = this.pending.get(correlationId);
      if (list) list.push(request);
      else this.pending.set(correlationId, [request]);
      const base = toCommand({ ...message, correlationId });
      publish({
        ...base,
        // No `expiration`: a work queue dead-letters what expires. The deadline header lets the
        // server skip a request whose caller stopped waiting.
        properties: { ...base.properties, replyTo: DIRECT_REPLY_TO, correlationId },
        timeoutMs,
        once: true,
        onWritten: (channel) => {
          request.channel = channel;
        },
      }).catch((error: Error) => request.settle(error));
    });
  }

  /** Fails every pending request with `BackendClosedError`. */
  close(): void {
    for (const list of [...this.pending.values()]) {
      for (const request of [...list])
        request.settle(new BackendClosedError('AmqpBackend closed before the reply arrived'));
    }
  }

  private onReply(msg: ConsumeMessage | null): void {
    if (!msg) return;
    const correlationId = msg.properties.correlationId as string | undefined;
    const request = correlationId === undefined ? undefined : this.pending.get(correlationId)?.[0];
    if (!request) return;
    request.settle(undefined, {
      body: msg.content,
      headers: { ...(msg.properties.headers ?? {}) },
      contentType: msg.properties.contentType as string | undefined,
      contentEncoding: msg.properties.contentEncoding as string | undefined,
    });
  }

  private remove(correlationId: string, request: PendingRequest): boolean {
    const list = this.pending.get(correlationId);
    const index = list ? list.indexOf(request) : -1;
    if (!list || index < 0) return false;
    list.splice(index, 1);
    if (list.length === 0) this.pending.delete(correlationId);
    return true;
  }
}
