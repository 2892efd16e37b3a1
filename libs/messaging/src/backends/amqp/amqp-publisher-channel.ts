/**
 * The confirm channel `AmqpPublisher` writes on, one per connection: opened as part of each
 * connection's setup, reopened (after the reconnect backoff) when it closes while its connection
 * lives, and replaced when it nacks twice in a row. It remembers the error each closed channel
 * reported, so that the confirms that channel failed can tell whose publish it refused, and lets a
 * publish wait for the next channel within its deadline.
 */
import type { Logger } from '@nestjs/common';
import type { ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { BackendEventHub } from '../../backend/backend-events';
import { reconnectDelay, type ResolvedAmqpOptions } from './amqp-backend.options';
import { sanitizeError, type AmqpConnectionManager } from './amqp-connection';
import type { PublisherChannelHooks } from './amqp-publish-command';

/** What the channel tells its publisher, besides the hooks of the backend. */
export interface PublisherChannelEvents {
  /** A `basic.return` of a mandatory publish (its confirm, an ack, follows). */
  returned(msg: ConsumeMessage): void;
  /** A channel closed: what it returned will never meet a confirm. */
  closed(): void;
}

export class AmqpPublisherChannel {
  /** The channel to write on; `undefined` while there is none (disconnected, reopening). */
  current?: ConfirmChannel;
  private readonly waiters = new Set<() => void>();
  /** The error each closed channel reported, read by the confirms it failed. */
  private readonly errors = new WeakMap<ConfirmChannel, Error>();
  /** Nacks each channel gave since its last ack. */
  private readonly nacks = new WeakMap<ConfirmChannel, number>();
  private closed = false;

  constructor(
    private readonly connection: AmqpConnectionManager,
    private readonly options: ResolvedAmqpOptions,
    private readonly hub: BackendEventHub,
    private readonly logger: Logger,
    private readonly hooks: PublisherChannelHooks,
    private readonly events: PublisherChannelEvents,
  ) {}

  /** Opens the confirm channel on a new connection (part of the connection's setup). */
  async open(conn: ChannelModel): Promise<void> {
    const ch = await conn.createConfirmChannel();
    ch.on('error', (error: unknown) => {
      const sanitized = sanitizeError(error, 'AMQP publisher channel');
      this.errors.set(ch, sanitized);
      this.hub.emitError(sanitized);
    });
    ch.on('return', (msg: ConsumeMessage) => this.events.returned(msg));
    let gone = false;
    ch.on('close', () => {
      gone = true;
      this.onClose(conn, ch);
    });
    try {
      await this.hooks.opened(ch);
      // Closed while its reply consumer was starting: never hand out a dead channel.
      if (gone) throw new Error('the publisher channel closed while it was being opened');
    } catch (error) {
      await ch.close().catch(() => undefined);
      throw error;
    }
    this.current = ch;
    this.wake();
  }

  /** The error `ch` closed with, if it reported one. */
  errorOf(ch: ConfirmChannel | undefined): Error | undefined {
    return ch && this.errors.get(ch);
  }

  /** `ch` acked a publish: its nacks in a row start again from zero. */
  acked(ch: ConfirmChannel | undefined): void {
    if (ch) this.nacks.delete(ch);
  }

  /**
   * `ch` nacked a publish; one nack alone (a full queue, a broker hiccup) keeps the channel, a
   * second with no ack between replaces it (what it holds unconfirmed goes again).
   */
  nacked(ch: ConfirmChannel | undefined, attempt: number): void {
    if (!ch) return;
    const nacked = (this.nacks.get(ch) ?? 0) + 1;
    this.nacks.set(ch, nacked);
    if (nacked >= 2) this.replace(ch, attempt);
  }

  /** Resolves when a channel opens, or after `timeoutMs`, whichever comes first. */
  waitForChannel(timeoutMs: number): Promise<void> {
    if (timeoutMs <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const waiter = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        resolve();
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** Forgets the channel of a lost connection (its pending confirms already failed). */
  lost(): void {
    this.current = undefined;
  }

  /** Closes the channel for good; publishes waiting for one look again (and find the backend closed). */
  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    const ch = this.current;
    this.current = undefined;
    if (ch) await ch.close().catch(() => undefined);
  }

  private wake(): void {
    for (const wake of this.waiters) wake();
    this.waiters.clear();
  }

  /** Closes `ch`, if it is still the channel, and opens another. */
  private replace(ch: ConfirmChannel, attempt: number): void {
    const conn = this.connection.current;
    if (ch !== this.current || !conn) return;
    this.current = undefined;
    this.logger.warn('RabbitMQ nacked a publish; replacing the publisher channel');
    void ch.close().catch(() => undefined);
    this.reopen(conn, attempt);
  }

  private onClose(conn: ChannelModel, ch: ConfirmChannel): void {
    this.hooks.closed(ch);
    this.events.closed();
    if (this.current !== ch) return;
    this.current = undefined;
    // amqplib closes the channels before the connection reports `close`: decide a tick later.
    setImmediate(() => {
      if (this.closed || this.current || this.connection.current !== conn) return;
      this.logger.warn('The publisher channel closed; reopening it');
      this.reopen(conn, 0);
    });
  }

  private reopen(conn: ChannelModel, attempt: number): void {
    setTimeout(
      () => {
        if (this.closed || this.current || this.connection.current !== conn) return;
        this.open(conn).catch((error: unknown) => {
          this.hub.emitError(sanitizeError(error, 'reopening the AMQP publisher channel'));
          this.reopen(conn, attempt + 1);
        });
      },
      reconnectDelay(this.options.reconnect, attempt),
    );
  }
}
