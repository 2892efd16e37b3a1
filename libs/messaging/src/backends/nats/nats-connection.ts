/**
 * The NATS connection of one {@link NatsBackend}: the client packages loaded on demand, a bounded
 * first connect that says what to fix, the JetStream check and streams, and the client's status
 * stream mapped to the backend's `status` events. The client reconnects by itself (forever, to any of
 * `servers`); subscriptions and consumers follow through `onReconnect`, which also tells them when a
 * closed connection was replaced by a new one.
 */
import type { Logger } from '@nestjs/common';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { BackendEventHub } from '../../backend/backend-events';
import { BackendClosedError, MessagingError } from '../../errors/messaging.errors';
import { loadOptionalPeer } from '../../errors/config-checks';
import { redactCredentials, type ResolvedNatsOptions } from './nats-backend.options';
import { ensureStreams } from './nats-declarations';

/** The NATS server could not be reached, or has no JetStream. */
export class NatsConnectError extends MessagingError {
  readonly code = 'CONNECT_FAILED';
}

/** The two client packages, as `require` returns them. */
export interface NatsModules {
  readonly transport: typeof import('@nats-io/transport-node');
  readonly jetstream: typeof import('@nats-io/jetstream');
}

/** Loads the NATS client packages on demand so that apps on another backend run without them. */
export function loadNatsModules(load: (id: string) => unknown = require): NatsModules {
  return loadOptionalPeer(
    'NatsBackend needs the NATS client packages',
    '@nats-io/transport-node @nats-io/jetstream',
    () => ({
      transport: load('@nats-io/transport-node') as NatsModules['transport'],
      jetstream: load('@nats-io/jetstream') as NatsModules['jetstream'],
    }),
  );
}

/** What a connected backend works with. */
export interface NatsLink {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
}

export class NatsConnectionManager {
  private link?: NatsLink;
  private connecting?: Promise<NatsLink>;
  private closed = false;
  /** Connections made so far: a second one replaces a closed one. */
  private connections = 0;

  constructor(
    private readonly modules: NatsModules,
    private readonly options: ResolvedNatsOptions,
    private readonly hub: BackendEventHub,
    private readonly logger: Logger,
    private readonly onReconnect: () => void,
  ) {}

  /** The live link, if connected once and not closed. */
  get current(): NatsLink | undefined {
    return this.link;
  }

  /** Connects once (a second call waits for the first); rejects after `connectTimeoutMs`. */
  connect(): Promise<NatsLink> {
    if (this.closed) return Promise.reject(new BackendClosedError('NatsBackend is closed'));
    if (this.link) return Promise.resolve(this.link);
    this.connecting ??= this.doConnect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /** A fresh inbox subject. */
  inbox(): string {
    return this.modules.transport.createInbox();
  }

  /** Drains (flushes pending acks and publishes) and closes the connection. */
  async close(): Promise<void> {
    this.closed = true;
    const link = this.link ?? (await this.connecting?.catch(() => undefined));
    this.link = undefined;
    if (!link) return;
    // Drains (sends the acks and publishes still buffered) when connected; bounded either way.
    if (this.hub.status === 'connected') {
      const drained = link.nc.drain().then(
        () => true,
        () => false,
      );
      const timer = new Promise<boolean>((resolve) =>
        setTimeout(() => resolve(false), this.options.closeTimeoutMs).unref(),
      );
      if (await Promise.race([drained, timer])) return;
    }
    await link.nc.close().catch(() => undefined);
  }

  private async doConnect(): Promise<NatsLink> {
    this.hub.setStatus('connecting');
    const { transport, jetstream } = this.modules;
    const deadline = Date.now() + this.options.connectTimeoutMs;
    let nc: NatsConnection | undefined;
    let lastError: unknown;
    while (!nc) {
      const left = deadline - Date.now();
      try {
        nc = await transport.connect({
          servers: [...this.options.servers],
          name: this.options.name,
          user: this.options.user,
          pass: this.options.pass,
          token: this.options.token,
          timeout: Math.max(100, Math.min(left, 5_000)),
          maxReconnectAttempts: -1,
          reconnectTimeWait: 500,
          pingInterval: 10_000,
          // No stack captured for the requests this backend still makes through nats.js (JetStream
          // API calls, confirmed acks): the errors it reports name what failed themselves.
          // Publishes and volatile requests do not go through nats.js requests at all.
          noAsyncTraces: true,
        });
      } catch (error) {
        lastError = error;
        if (this.closed || Date.now() + 200 >= deadline) {
          this.hub.setStatus('disconnected');
          throw new NatsConnectError(
            `NatsBackend could not connect to ${redactCredentials(this.options.servers.join(', '))} within ` +
              `${this.options.connectTimeoutMs} ms (${describe(lastError)}). Is nats-server running ` +
              'there with JetStream (`nats-server -js`)? Check `servers`, or raise `connectTimeoutMs`.',
            // The client's own error may name the server URL, credentials included.
            { cause: redactedCause(lastError) },
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    try {
      const jsm = await jetstream.jetstreamManager(nc, { timeout: this.options.publishTimeoutMs });
      await ensureStreams(jsm, this.options);
      const link: NatsLink = {
        nc,
        jsm,
        js: jetstream.jetstream(nc, { timeout: this.options.publishTimeoutMs }),
      };
      if (this.closed) {
        await nc.close();
        throw new BackendClosedError('NatsBackend closed while connecting');
      }
      this.link = link;
      void this.watch(nc);
      // A connection the client gave up on was replaced: pulls and subscriptions move to this one.
      if (this.connections++ > 0) queueMicrotask(() => this.onReconnect());
      this.hub.setStatus('connected');
      this.logger.log(
        `Connected to NATS ${redactCredentials(nc.getServer())} (streams ${this.options.prefix}-*)`,
      );
      return link;
    } catch (error) {
      await nc.close().catch(() => undefined);
      this.hub.setStatus('disconnected');
      if (error instanceof BackendClosedError) throw error;
      throw new NatsConnectError(
        `NatsBackend connected to ${redactCredentials(nc.getServer())} but cannot use JetStream there (${describe(error)}). ` +
          'Start nats-server with JetStream enabled (`nats-server -js`) and give this user JetStream access.',
        { cause: error },
      );
    }
  }

  /** Maps the client's status events to the backend's. */
  private async watch(nc: NatsConnection): Promise<void> {
    void nc.closed().then((error) => {
      if (this.link?.nc === nc) this.link = undefined;
      if (!this.closed && error)
        this.hub.emitError(new NatsConnectError(`NATS connection closed: ${describe(error)}`));
      this.hub.setStatus(this.closed ? 'closed' : 'disconnected');
    });
    for await (const status of nc.status()) {
      switch (status.type) {
        case 'disconnect':
          if (!this.closed) {
            this.logger.warn(
              `Lost the NATS connection to ${redactCredentials(String(status.server))}; reconnecting`,
            );
            this.hub.setStatus('reconnecting');
          }
          break;
        case 'reconnect':
          this.logger.log(`Reconnected to NATS ${redactCredentials(String(status.server))}`);
          this.hub.setStatus('connected');
          this.onReconnect();
          break;
        case 'error':
          this.hub.emitError(new NatsConnectError(`NATS: ${describe(status.error)}`));
          break;
        default:
          break;
      }
    }
  }
}

/** An error's message, with the credentials of any URL in it redacted. */
export function describe(error: unknown): string {
  return redactCredentials(error instanceof Error ? error.message : String(error));
}

/** `error` as a cause that says nothing of credentials: an Error with the redacted message. */
function redactedCause(error: unknown): unknown {
  const text = error instanceof Error ? error.message : String(error);
  if (redactCredentials(text) === text) return error;
  const copy = new Error(redactCredentials(text));
  copy.name = error instanceof Error ? error.name : 'Error';
  return copy;
}
