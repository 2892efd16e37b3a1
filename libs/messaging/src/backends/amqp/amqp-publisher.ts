import type { Logger } from '@nestjs/common';
import type { ChannelModel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import type { BackendEventHub } from '../../backend/backend-events';
import {
  BackendClosedError,
  PublishFailedError,
  PublishTimeoutError,
  UnroutableError,
} from '../../errors/messaging.errors';
import { reconnectDelay, type ResolvedAmqpOptions } from './amqp-backend.options';
import { sanitizeError, type AmqpConnectionManager } from './amqp-connection';

/** One message to publish on the confirm channel. */
export interface PublishCommand {
  readonly exchange: string;
  readonly routingKey: string;
  readonly content: Buffer;
  readonly properties: Options.Publish;
  /** Reject with `UnroutableError` when no queue receives it. */
  readonly mandatory: boolean;
  /** Topic or queue name used in error messages. */
  readonly target: string;
  /** Overrides `publishTimeoutMs`. */
  readonly timeoutMs?: number;
  /** Called with the channel the message was written on. */
  readonly onWritten?: (channel: ConfirmChannel) => void;
}

/** Hooks run on each new publisher channel (the request/reply consumer lives on it). */
export interface PublisherChannelHooks {
  opened(channel: ConfirmChannel): Promise<void>;
  closed(channel: ConfirmChannel): void;
}

interface ReturnSlot {
  returned: boolean;
}

/**
 * Publishes on one confirm channel per connection. A publish resolves on the broker's ack and
 * rejects on nack, on a `basic.return` when mandatory (the return comes before the ack, which is still
 * an ack), on channel close, or after `publishTimeoutMs`. Backpressure: when amqplib's write buffer is
 * full (`publish()` returned false) later writes wait for `drain` (the message itself is already
 * buffered and is never written twice), and at most `maxInFlightPublishes` are unconfirmed at once.
 * A publish made while disconnected waits for the reconnection, within the same timeout.
 */
export class AmqpPublisher {
  private channel?: ConfirmChannel;
  private inFlight = 0;
  private readonly slotWaiters: Array<() => void> = [];
  private readonly channelWaiters = new Set<(channel: ConfirmChannel) => void>();
  private drained?: Promise<void>;
  private readonly returnSlots = new Map<string, ReturnSlot[]>();
  private readonly active = new Set<(error: Error) => void>();
  private closed = false;

  constructor(
    private readonly connection: AmqpConnectionManager,
    private readonly options: ResolvedAmqpOptions,
    private readonly hub: BackendEventHub,
    private readonly logger: Logger,
    private readonly hooks: PublisherChannelHooks,
  ) {}

  /** Opens the confirm channel on a new connection (part of the connection's setup). */
  async open(conn: ChannelModel): Promise<void> {
    const ch = await conn.createConfirmChannel();
    ch.on('error', (error: unknown) =>
      this.hub.emitError(sanitizeError(error, 'AMQP publisher channel')),
    );
    ch.on('return', (msg: ConsumeMessage) => this.onReturn(msg));
    ch.on('close', () => this.onChannelClose(conn, ch));
    try {
      await this.hooks.opened(ch);
    } catch (error) {
      await ch.close().catch(() => undefined);
      throw error;
    }
    this.channel = ch;
    for (const waiter of this.channelWaiters) waiter(ch);
    this.channelWaiters.clear();
  }

  /** Publishes and resolves once the broker confirmed it; see the class comment. */
  publish(command: PublishCommand): Promise<void> {
    if (this.closed)
      return Promise.reject(new BackendClosedError('AmqpBackend is closed: cannot publish'));
    const timeoutMs = command.timeoutMs ?? this.options.publishTimeoutMs;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let holdsSlot = false;
      const finish = (error?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.active.delete(finish);
        if (holdsSlot) this.releaseSlot();
        if (error) reject(error);
        else resolve();
      };
      const timer = setTimeout(
        () =>
          finish(
            new PublishTimeoutError(
              `RabbitMQ did not confirm the publish to '${command.target}' within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      this.active.add(finish);
      const deadline = Date.now() + timeoutMs;
      this.acquire(deadline, () => settled)
        .then((ch) => {
          if (settled) {
            this.releaseSlot();
            return;
          }
          holdsSlot = true;
          this.write(ch, command, finish);
        })
        .catch((error: unknown) =>
          finish(error instanceof Error ? error : new Error(String(error))),
        );
    });
  }

  /** Fails every pending publish with `BackendClosedError` and closes the channel. */
  async close(): Promise<void> {
    this.closed = true;
    const error = new BackendClosedError(
      'AmqpBackend closed before the broker confirmed the publish',
    );
    for (const finish of [...this.active]) finish(error);
    for (const wake of this.slotWaiters.splice(0)) wake();
    const ch = this.channel;
    this.channel = undefined;
    if (ch) await ch.close().catch(() => undefined);
  }

  private write(
    ch: ConfirmChannel,
    command: PublishCommand,
    finish: (error?: Error) => void,
  ): void {
    const slot: ReturnSlot = { returned: false };
    const key = returnKey(command.properties.messageId, command.exchange, command.routingKey);
    if (command.mandatory) this.addReturnSlot(key, slot);
    let written: boolean;
    try {
      written = ch.publish(
        command.exchange,
        command.routingKey,
        command.content,
        { ...command.properties, mandatory: command.mandatory },
        (err: unknown) => {
          if (command.mandatory) this.removeReturnSlot(key, slot);
          if (err) {
            const reason = err instanceof Error ? err.message : 'negative acknowledgement';
            finish(
              new PublishFailedError(
                `RabbitMQ did not accept the publish to '${command.target}': ${reason}`,
              ),
            );
          } else if (slot.returned) finish(new UnroutableError(command.target));
          else finish();
        },
      );
    } catch (error) {
      if (command.mandatory) this.removeReturnSlot(key, slot);
      finish(
        new PublishFailedError(
          `Could not publish to '${command.target}': ${sanitizeError(error).message}`,
        ),
      );
      return;
    }
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

  /** Waits, within `deadline`, for a channel, a free in-flight slot and a drained write buffer. */
  private async acquire(deadline: number, gaveUp: () => boolean): Promise<ConfirmChannel> {
    await this.takeSlot();
    try {
      for (;;) {
        if (this.closed) throw new BackendClosedError('AmqpBackend is closed: cannot publish');
        const remaining = deadline - Date.now();
        if (remaining <= 0 || gaveUp())
          throw new PublishTimeoutError('publish timed out while waiting for the broker');
        if (this.drained) {
          await this.drained;
          continue;
        }
        if (this.channel) return this.channel;
        await this.connection.waitForConnection(remaining);
        if (!this.channel) await this.waitForChannel(deadline - Date.now());
      }
    } catch (error) {
      this.releaseSlot();
      throw error;
    }
  }

  private takeSlot(): Promise<void> {
    if (this.inFlight < this.options.maxInFlightPublishes) {
      this.inFlight++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.slotWaiters.push(() => {
        this.inFlight++;
        resolve();
      });
    });
  }

  private releaseSlot(): void {
    this.inFlight--;
    const next = this.slotWaiters.shift();
    if (next) next();
  }

  private waitForChannel(timeoutMs: number): Promise<void> {
    if (timeoutMs <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const waiter = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.channelWaiters.delete(waiter);
        resolve();
      }, timeoutMs);
      this.channelWaiters.add(waiter);
    });
  }

  private onReturn(msg: ConsumeMessage): void {
    const key = returnKey(msg.properties.messageId, msg.fields.exchange, msg.fields.routingKey);
    const slot = this.returnSlots.get(key)?.find((s) => !s.returned);
    if (slot) slot.returned = true;
  }

  private addReturnSlot(key: string, slot: ReturnSlot): void {
    const list = this.returnSlots.get(key);
    if (list) list.push(slot);
    else this.returnSlots.set(key, [slot]);
  }

  private removeReturnSlot(key: string, slot: ReturnSlot): void {
    const list = this.returnSlots.get(key);
    if (!list) return;
    const index = list.indexOf(slot);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) this.returnSlots.delete(key);
  }

  private onChannelClose(conn: ChannelModel, ch: ConfirmChannel): void {
    this.hooks.closed(ch);
    if (this.channel !== ch) return;
    this.channel = undefined;
    // amqplib closes the channels before the connection reports `close`: decide a tick later.
    setImmediate(() => {
      if (this.closed || this.channel || this.connection.current !== conn) return;
      this.logger.warn('The publisher channel closed; reopening it');
      this.reopen(conn, 0);
    });
  }

  private reopen(conn: ChannelModel, attempt: number): void {
    setTimeout(
      () => {
        if (this.closed || this.channel || this.connection.current !== conn) return;
        this.open(conn).catch((error: unknown) => {
          this.hub.emitError(sanitizeError(error, 'reopening the AMQP publisher channel'));
          this.reopen(conn, attempt + 1);
        });
      },
      reconnectDelay(this.options.reconnect, attempt),
    );
  }

  /** Forgets the channel of a lost connection (its pending confirms already failed). */
  lost(): void {
    this.channel = undefined;
  }
}

function returnKey(messageId: unknown, exchange: string, routingKey: string): string {
  return `${String(messageId)}\u0000${exchange}\u0000${routingKey}`;
}
