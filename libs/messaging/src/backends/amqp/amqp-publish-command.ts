/**
 * What is handed to `AmqpPublisher`: one message to publish on a confirm channel, and the hooks
 * run on each of its channels. Shared by every part of the backend that publishes (the consumer's
 * retries and dead letters, the delay levels, the requester, replays).
 */
import type { ConfirmChannel, Options } from 'amqplib';

/** One message to publish on the confirm channel. */
export interface PublishCommand {
  readonly exchange: string;
  readonly routingKey: string;
  readonly content: Buffer;
  /** With `mandatory: true`, a message no queue receives rejects with `UnroutableError`. */
  readonly properties: Options.Publish;
  /** Topic or queue name used in error messages. */
  readonly target: string;
  /** Overrides `publishTimeoutMs`. */
  readonly timeoutMs?: number;
  /** Called with the channel the message was written on. */
  readonly onWritten?: (channel: ConfirmChannel) => void;
  /**
   * Never written again after its channel closed: a request, whose reply could only come back on
   * that channel (its caller gets the failure and decides).
   */
  readonly once?: boolean;
}

/** Hooks run on each new publisher channel (the request/reply consumer lives on it). */
export interface PublisherChannelHooks {
  opened(channel: ConfirmChannel): Promise<void>;
  closed(channel: ConfirmChannel): void;
}
