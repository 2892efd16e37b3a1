import type { Logger } from '@nestjs/common';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import type { BackendEventHub } from '../../backend/backend-events';
import {
  BackendClosedError,
  PublishBackpressureError,
  PublishFailedError,
  PublishTimeoutError,
  UnroutableError,
} from '../../errors/messaging.errors';
import type { ResolvedAmqpOptions } from './amqp-backend.options';
import { sanitizeError, type AmqpConnectionManager } from './amqp-connection';
import {
  channelErrorRefusal,
  PublishDeadlines,
  PublishWindow,
  ReturnedMessages,
  CHANNEL_CLOSED,
  CONFIRMED,
  MAX_RESENDS_AFTER_NACK,
  NACKED,
  type Pending,
  settledAlready,
} from './amqp-publish-bookkeeping';
import type { PublishCommand, PublisherChannelHooks } from './amqp-publish-command';
import { AmqpPublisherChannel } from './amqp-publisher-channel';

/**
 * Publishes on one confirm channel per connection. A publish resolves on the broker's ack and
 * rejects on a `basic.return` when mandatory (the return comes before the ack, which is still an
 * ack), after `publishTimeoutMs`, or after nacks on several channels (a nack alone goes again;
 * a channel that nacks twice in a row is replaced). Backpressure: when amqplib's write buffer is
 * full (`publish()` returned false) later writes wait for `drain` (the message itself is already
 * buffered and is never written twice), and at most `maxInFlightPublishes` are unconfirmed at once.
 * A publish made while disconnected waits for the reconnection, within the same timeout, and so does
 * one whose channel closed before its confirm came: it is written again, with the same message id, on
 * the next channel (RabbitMQ may then hold it twice: delivery is at least once). A channel closed by
 * an error that names the publish (its exchange is gone, its body is over the broker's size limit)
 * fails that publish instead; a channel error that names none is survived twice.
 *
 * The channel itself, opened, reopened and replaced, is `AmqpPublisherChannel`.
 *
 * Per publish it costs one promise and one confirm callback: publishes with the default timeout share
 * one timer, and returned messages are matched to their publish only when the broker returned
 * something (`amqp-publish-bookkeeping.ts`).
 */
export class AmqpPublisher {
  private readonly channel: AmqpPublisherChannel;
  private readonly window: PublishWindow;
  private drained?: Promise<void>;
  private readonly deadlines = new PublishDeadlines<Pending>((pending) => this.expire(pending));
  /** `basic.return`s not yet matched to a confirm, by message id, exchange and routing key. */
  private readonly returns = new ReturnedMessages();
  /** Publishes waiting to be written: at most `maxQueuedPublishes`. */
  private waiting = 0;
  private closed = false;

  constructor(
    private readonly connection: AmqpConnectionManager,
    private readonly options: ResolvedAmqpOptions,
    private readonly hub: BackendEventHub,
    logger: Logger,
    hooks: PublisherChannelHooks,
  ) {
    this.window = new PublishWindow(options.maxInFlightPublishes);
    this.channel = new AmqpPublisherChannel(connection, options, hub, logger, hooks, {
      returned: (msg) => this.returns.record(msg),
      // Its publishes failed with the channel: their returns will never meet a confirm.
      closed: () => this.returns.clear(),
    });
  }

  /** The confirm channel it writes on now, if any. */
  get current(): ConfirmChannel | undefined {
    return this.channel.current;
  }

  /** Opens the confirm channel on a new connection (part of the connection's setup). */
  open(conn: ChannelModel): Promise<void> {
    return this.channel.open(conn);
  }

  /** Publishes and resolves once the broker confirmed it; see the class comment. */
  publish(command: PublishCommand): Promise<void> {
    if (this.closed)
      return Promise.reject(new BackendClosedError('AmqpBackend is closed: cannot publish'));
    const ch = this.channel.current;
    const now = ch !== undefined && !this.drained && this.window.tryTake();
    if (!now && this.waiting >= this.options.maxQueuedPublishes) {
      return Promise.reject(
        new PublishBackpressureError(
          `${this.waiting} publishes already wait for RabbitMQ (${this.waitingFor()}); maxQueuedPublishes ` +
            `is ${this.options.maxQueuedPublishes}. Publish again later, or raise the limit.`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const pending = this.track(command, resolve, reject);
      if (now) {
        pending.holdsSlot = true;
        this.write(ch, pending);
        return;
      }
      this.writeWhenReady(pending);
    });
  }

  /** Writes `pending` once there is a channel, a free slot and a drained buffer, within its deadline. */
  private writeWhenReady(pending: Pending): void {
    this.waiting++;
    this.acquire(pending.deadline, () => pending.settled).then(
      (channel) => {
        this.waiting--;
        if (pending.settled) {
          this.window.release();
          return;
        }
        pending.holdsSlot = true;
        this.write(channel, pending);
      },
      (error: unknown) => {
        this.waiting--;
        this.finish(pending, error instanceof Error ? error : new Error(String(error)));
      },
    );
  }

  /**
   * Writes `command` at once without waiting for its confirm, outside the in-flight window: for
   * replies to requests, which must not queue behind the app's publishes and whose loss the caller's
   * timeout covers. False when there is no channel to write on.
   */
  send(command: PublishCommand): boolean {
    const ch = this.channel.current;
    if (!ch || this.closed) return false;
    try {
      ch.publish(command.exchange, command.routingKey, command.content, command.properties);
      return true;
    } catch (error) {
      this.hub.emitError(sanitizeError(error, `sending to '${command.target}'`));
      return false;
    }
  }

  /** Fails every pending publish with `BackendClosedError` and closes the channel. */
  async close(): Promise<void> {
    this.closed = true;
    const error = new BackendClosedError(
      'AmqpBackend closed before the broker confirmed the publish',
    );
    for (const pending of this.deadlines.takeAll()) this.finish(pending, error);
    this.window.releaseAll();
    await this.channel.close();
  }

  private track(
    command: PublishCommand,
    resolve: () => void,
    reject: (error: Error) => void,
  ): Pending {
    const timeoutMs = command.timeoutMs ?? this.options.publishTimeoutMs;
    const pending: Pending = {
      command,
      deadline: performance.now() + timeoutMs,
      settled: false,
      holdsSlot: false,
      written: false,
      resends: 0,
      nacks: 0,
      resolve,
      reject,
    };
    this.deadlines.add(pending, command.timeoutMs);
    return pending;
  }

  /** Settles `pending` once: frees its slot and timer, then resolves or rejects it. */
  private finish(pending: Pending, error?: Error): void {
    if (pending.settled) return;
    pending.settled = true;
    if (pending.holdsSlot) this.window.release();
    this.deadlines.settled(pending);
    if (error) pending.reject(error);
    else pending.resolve();
    pending.resolve = settledAlready;
    pending.reject = settledAlready;
  }

  private expire(pending: Pending): void {
    if (pending.settled) return;
    const { target } = pending.command;
    const timeoutMs = pending.command.timeoutMs ?? this.options.publishTimeoutMs;
    this.finish(
      pending,
      new PublishTimeoutError(
        pending.written
          ? `RabbitMQ did not confirm the publish to '${target}' within ${timeoutMs} ms; ` +
              'the outcome is unknown: publish it again with the same messageId'
          : `Could not publish to '${target}' within ${timeoutMs} ms: ${this.waitingFor()}`,
      ),
    );
  }

  /** Why a publish not yet written is waiting. */
  private waitingFor(): string {
    if (!this.channel.current) return 'no connection to RabbitMQ';
    if (this.drained) return 'the connection is not writable (TCP back-pressure)';
    return `${this.options.maxInFlightPublishes} publishes (maxInFlightPublishes) await their confirms`;
  }

  private write(ch: ConfirmChannel, pending: Pending): void {
    const { command } = pending;
    let written: boolean;
    try {
      written = ch.publish(
        command.exchange,
        command.routingKey,
        command.content,
        command.properties,
        (err: unknown) => this.onConfirm(pending, err),
      );
    } catch (error) {
      // A channel that closed under this write (amqplib: "Channel closed"): the next one takes it.
      if (error instanceof Error && /^channel closed/i.test(error.message)) {
        // A turn later, when its `close` has been handled and a new channel is on its way.
        setImmediate(() => this.resend(pending));
        return;
      }
      this.finish(
        pending,
        new PublishFailedError(
          `Could not publish to '${command.target}': ${sanitizeError(error).message}`,
        ),
      );
      return;
    }
    pending.written = true;
    pending.channel = ch;
    command.onWritten?.(ch);
    if (!written && !this.drained) {
      this.drained = new Promise<void>((resolve) => {
        const done = (): void => {
          ch.removeListener('drain', done);
          ch.removeListener('close', done);
          this.drained = undefined;
          resolve();
        };
        ch.once('drain', done);
        ch.once('close', done);
      });
    }
  }

  /** The broker's ack or nack, or the channel's close; `pending` may have timed out already. */
  private onConfirm(pending: Pending, err: unknown): void {
    const { command } = pending;
    if (err instanceof Error && !pending.settled && command.once !== true) {
      if (err.message === CHANNEL_CLOSED) {
        const channelError = this.channel.errorOf(pending.channel);
        const failure = channelErrorRefusal(command, channelError, pending.resends);
        if (failure) this.finish(pending, failure);
        else this.resend(pending);
        return;
      }
      if (err.message === NACKED && pending.nacks < MAX_RESENDS_AFTER_NACK) {
        // RabbitMQ 3.10 may nack everything a channel publishes to a quorum queue whose leader was
        // being re-elected when the channel first used it, until the old leader returns: a new
        // channel is served. So the nacked publish goes again, on a channel that replaces this one.
        pending.nacks++;
        this.returns.take(command);
        const { channel } = pending;
        this.resend(pending);
        this.channel.nacked(channel, pending.nacks - 1);
        return;
      }
    }
    pending.command = CONFIRMED;
    if (!err) this.channel.acked(pending.channel);
    const returned = this.returns.take(command);
    if (err) {
      const reason = err instanceof Error ? err.message : 'negative acknowledgement';
      this.finish(
        pending,
        new PublishFailedError(
          `RabbitMQ did not accept the publish to '${command.target}': ${reason}`,
        ),
      );
    } else {
      this.finish(
        pending,
        returned
          ? new UnroutableError(command.target, command.once ? 'durable-request' : 'publish')
          : undefined,
      );
    }
  }

  /** Writes `pending` again on the next channel, within its deadline. */
  private resend(pending: Pending): void {
    if (this.channel.errorOf(pending.channel)) pending.resends++;
    pending.written = false;
    if (pending.holdsSlot) {
      pending.holdsSlot = false;
      this.window.release();
    }
    this.writeWhenReady(pending);
  }

  /** Waits, within `deadline`, for a channel, a free in-flight slot and a drained write buffer. */
  private async acquire(deadline: number, gaveUp: () => boolean): Promise<ConfirmChannel> {
    await this.window.take();
    try {
      for (;;) {
        if (this.closed) throw new BackendClosedError('AmqpBackend is closed: cannot publish');
        const remaining = deadline - performance.now();
        if (remaining <= 0 || gaveUp())
          throw new PublishTimeoutError('publish timed out while waiting for the broker');
        if (this.drained) {
          await this.drained;
          continue;
        }
        if (this.channel.current) return this.channel.current;
        await this.connection.waitForConnection(remaining);
        if (!this.channel.current) await this.channel.waitForChannel(deadline - performance.now());
      }
    } catch (error) {
      this.window.release();
      throw error;
    }
  }

  /** Forgets the channel of a lost connection (its pending confirms already failed). */
  lost(): void {
    this.channel.lost();
  }
}
