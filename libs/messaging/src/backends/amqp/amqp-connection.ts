/**
 * One AMQP connection, kept open: connects over the configured URLs in order, and after any loss
 * (broker or operator close, which emits `close` without `error`; socket error; missed heartbeats)
 * reconnects with exponential backoff and jitter.
 *
 * Why not amqplib's own `recovery` option (2.3.x): it reconnects to a single URL (no failover), hands
 * back a connection on which every channel, consumer and pending confirm is gone, and knows nothing of
 * a channel closed alone (406, 404, consumer cancel). Channels, topology and consumers have to be
 * rebuilt by us anyway, so we own the loop and tell the backend through {@link AmqpConnectionHooks}.
 */
import type { Logger } from '@nestjs/common';
import type { ChannelModel } from 'amqplib';
import { diagnoseConnectFailure } from './amqp-connect-errors';
import { coalesceWrites } from './amqp-wire';
import type { BackendEventHub } from '../../backend/backend-events';
import { BrokerConnectError } from '../../backend/connect-error';
import { redactCredentials } from '../../backend/redact-credentials';
import { BackendClosedError } from '../../errors/messaging.errors';
import { reconnectDelay, type ResolvedAmqpOptions } from './amqp-backend.options';

/** The part of the `amqplib` module this backend uses. */
export interface AmqplibModule {
  connect(url: string, socketOptions?: Record<string, unknown>): Promise<ChannelModel>;
}

/** What the backend does when the connection comes and goes. */
export interface AmqpConnectionHooks {
  /** Runs on each new connection before it is reported connected; a throw drops it and retries. */
  setup(conn: ChannelModel): Promise<void>;
  /** Called once when a connection that was reported connected is lost. */
  lost(conn: ChannelModel): void;
  /**
   * Whether anything listens to the backend's `error` events. When nothing does (a backend used on
   * its own, a command line), a failed connection attempt is logged as a warning instead of going
   * unseen until `connect()` gives up.
   */
  errorsHeard(): boolean;
}

/** A broker that could not be reached (after redaction of any credentials). */
export class AmqpConnectError extends BrokerConnectError {}

interface Waiter {
  resolve(conn: ChannelModel): void;
  reject(error: Error): void;
}

/** Copies an error with every credential removed from its message, keeping its class name and code. */
export function sanitizeError(error: unknown, context?: string): Error {
  const raw = error instanceof Error ? error.message : String(error);
  const message = redactCredentials(context ? `${context}: ${raw}` : raw);
  if (error instanceof Error && !context && message === error.message) return error;
  const copy = new Error(message);
  copy.name = error instanceof Error ? error.name : 'Error';
  const code = (error as { code?: unknown } | null)?.code;
  if (code !== undefined) (copy as Error & { code?: unknown }).code = code;
  return copy;
}

/** Keeps one connection open with reconnection over several URLs; see the file comment. */
export class AmqpConnectionManager {
  private conn?: ChannelModel;
  private loop?: Promise<void>;
  private closed = false;
  private connectedOnce = false;
  private stopLoop = false;
  private readonly waiters = new Set<Waiter>();
  private wakeSleeper?: () => void;
  private lastError?: Error;
  /** Whether `lastError` is one that retrying cannot fix (see `amqp-connect-errors.ts`). */
  private lastPermanent = false;
  /** The URL of the open connection, and of the last one lost. */
  private connUrl?: string;
  private lostUrl?: string;
  private blockedBy?: string;

  constructor(
    private readonly amqplib: AmqplibModule,
    private readonly options: ResolvedAmqpOptions,
    private readonly hub: BackendEventHub,
    private readonly logger: Logger,
    private readonly hooks: AmqpConnectionHooks,
  ) {}

  /** Why the broker blocks publishing on the open connection (a memory or disk alarm), if it does. */
  get blocked(): string | undefined {
    return this.blockedBy;
  }

  /** The open connection, if any. */
  get current(): ChannelModel | undefined {
    return this.conn;
  }

  /** Connects; rejects after `connectTimeoutMs` if no URL could be reached (and stops trying). */
  async connect(): Promise<void> {
    if (this.closed) throw new BackendClosedError('AmqpBackend is closed');
    if (this.conn) return;
    this.ensureLoop();
    try {
      await this.waitForConnection(this.options.connectTimeoutMs);
    } catch (error) {
      if (!this.connectedOnce && !this.closed) this.stopLoop = true;
      if (error instanceof AmqpConnectError && !this.lastError) {
        // Not one attempt finished: the host took every packet and never answered.
        throw new AmqpConnectError(
          `${error.message} No attempt got an answer: check the host and port, and that no ` +
            'firewall drops the connection.',
        );
      }
      if (
        error instanceof AmqpConnectError &&
        this.lastError &&
        !error.message.includes(this.lastError.message)
      ) {
        throw new AmqpConnectError(
          `${error.message} Last error: ${sanitizeError(this.lastError).message}`,
        );
      }
      throw error;
    }
  }

  /**
   * Resolves with the open connection, waiting for a (re)connection for at most `timeoutMs`.
   * Starts connecting when nothing is going on.
   */
  waitForConnection(timeoutMs: number): Promise<ChannelModel> {
    if (this.closed) return Promise.reject(new BackendClosedError('AmqpBackend is closed'));
    if (this.conn) return Promise.resolve(this.conn);
    this.ensureLoop();
    return new Promise<ChannelModel>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(
          new AmqpConnectError(
            `Could not connect to RabbitMQ at ${this.options.urls.map(redactCredentials).join(', ')} within ${timeoutMs} ms.`,
          ),
        );
      }, timeoutMs);
      const waiter: Waiter = {
        resolve: (conn) => {
          clearTimeout(timer);
          resolve(conn);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.waiters.add(waiter);
    });
  }

  /** Closes the connection and stops reconnecting; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wakeSleeper?.();
    for (const waiter of this.waiters)
      waiter.reject(new BackendClosedError('AmqpBackend is closed'));
    this.waiters.clear();
    const conn = this.conn;
    this.conn = undefined;
    if (conn) await conn.close().catch(() => undefined);
    await this.loop?.catch(() => undefined);
  }

  private ensureLoop(): void {
    if (this.closed) return;
    this.stopLoop = false;
    if (this.loop) return;
    this.hub.setStatus(this.connectedOnce ? 'reconnecting' : 'connecting');
    this.loop = this.runLoop()
      .catch((error: unknown) =>
        this.hub.emitError(sanitizeError(error, 'AMQP connection loop failed')),
      )
      .finally(() => {
        this.loop = undefined;
        if (this.conn || this.closed) return;
        // Lost again before this loop was done (a close right after the open): go on.
        if (this.connectedOnce && !this.stopLoop) this.ensureLoop();
        else this.hub.setStatus('disconnected');
      });
  }

  /**
   * Tries every URL in turn, round after round with backoff. After a lost connection the round
   * starts with the URL after the one that was lost: failing over to the next node first, rather
   * than waiting out a connect timeout on the node that just went away. Before the first connection,
   * a round in which every URL refused the credentials, the vhost or the TLS certificate ends the
   * wait at once: retrying cannot fix that (`amqp-connect-errors.ts` tells which failures those are).
   */
  private async runLoop(): Promise<void> {
    const { urls } = this.options;
    const first = this.lostUrl === undefined ? 0 : (urls.indexOf(this.lostUrl) + 1) % urls.length;
    const order = [...urls.slice(first), ...urls.slice(0, first)];
    for (let round = 0; !this.closed && !this.stopLoop; round++) {
      let refused = 0;
      for (const url of order) {
        if (this.closed || this.stopLoop) return;
        if (await this.tryConnect(url)) return;
        if (this.lastPermanent) refused++;
      }
      if (this.closed || this.stopLoop) return;
      if (!this.connectedOnce && refused === order.length) {
        this.giveUp(this.lastError as Error);
        return;
      }
      await this.sleep(reconnectDelay(this.options.reconnect, round));
    }
  }

  private async tryConnect(url: string): Promise<boolean> {
    const where = redactCredentials(url);
    let conn: ChannelModel;
    try {
      conn = await this.amqplib.connect(this.withHeartbeat(url), this.socketOptions());
    } catch (error) {
      const { fix, permanent } = diagnoseConnectFailure(error, url, this.attemptTimeoutMs());
      const failure = sanitizeError(error, `connecting to ${where}`);
      failure.message = `${failure.message.replace(/\.$/, '')}. ${redactCredentials(fix)}`;
      this.failed(failure, permanent);
      return false;
    }
    coalesceWrites(conn);
    let dead = false;
    conn.on('error', (error: unknown) =>
      this.hub.emitError(sanitizeError(error, `AMQP connection to ${where}`)),
    );
    conn.on('blocked', (reason: unknown) => {
      if (this.conn === conn) this.blockedBy = String(reason);
      this.logger.warn(`Broker blocked publishing on ${where}: ${String(reason)}`);
    });
    conn.on('unblocked', () => {
      if (this.conn === conn) this.blockedBy = undefined;
      this.logger.log(`Broker unblocked publishing on ${where}`);
    });
    conn.on('close', () => {
      dead = true;
      this.onClose(conn);
    });
    try {
      await this.hooks.setup(conn);
    } catch (error) {
      this.failed(sanitizeError(error, `setting up the connection to ${where}`), false);
      await conn.close().catch(() => undefined);
      return false;
    }
    if (dead) return false;
    if (this.closed || this.stopLoop) {
      await conn.close().catch(() => undefined);
      return true;
    }
    this.conn = conn;
    this.connUrl = url;
    this.connectedOnce = true;
    this.logger.log(`Connected to RabbitMQ at ${where}`);
    this.hub.setStatus('connected');
    for (const waiter of this.waiters) waiter.resolve(conn);
    this.waiters.clear();
    return true;
  }

  private onClose(conn: ChannelModel): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    this.blockedBy = undefined;
    this.lostUrl = this.connUrl;
    this.hooks.lost(conn);
    if (this.closed) return;
    this.logger.warn('Lost the connection to RabbitMQ; reconnecting');
    this.ensureLoop();
  }

  /** Reports a failed attempt: an `error` event, or a warning when nothing listens to those. */
  private failed(error: Error, permanent: boolean): void {
    this.lastError = error;
    this.lastPermanent = permanent;
    this.hub.emitError(error);
    if (!this.hooks.errorsHeard()) this.logger.warn(error.message);
  }

  /** Fails every waiter with `error`, which retrying cannot fix, and stops trying. */
  private giveUp(error: Error): void {
    this.stopLoop = true;
    const failure = new AmqpConnectError(
      `Could not connect to RabbitMQ at ${this.options.urls.map(redactCredentials).join(', ')}: ` +
        `${error.message} Retrying will not help.`,
    );
    for (const waiter of this.waiters) waiter.reject(failure);
    this.waiters.clear();
  }

  private withHeartbeat(url: string): string {
    const parsed = new URL(url);
    if (!parsed.searchParams.has('heartbeat'))
      parsed.searchParams.set('heartbeat', String(this.options.heartbeatSeconds));
    return parsed.toString();
  }

  private socketOptions(): Record<string, unknown> {
    const socket: Record<string, unknown> = {
      timeout: this.attemptTimeoutMs(),
      noDelay: true,
      clientProperties: this.options.connectionName
        ? { connection_name: this.options.connectionName }
        : {},
    };
    if (this.options.tls) Object.assign(socket, this.options.tls);
    return socket;
  }

  /** How long one attempt (TCP, TLS, then the AMQP handshake) may take. */
  private attemptTimeoutMs(): number {
    return Math.min(this.options.connectTimeoutMs, 10_000);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeSleeper = done;
    });
  }
}
