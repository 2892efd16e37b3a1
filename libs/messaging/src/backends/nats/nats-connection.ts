/**
 * The NATS connection of one {@link NatsBackend}: the client packages loaded on demand, a bounded
 * first connect that says what to fix, the JetStream check and streams, and the client's status
 * stream mapped to the backend's `status` events. The client reconnects by itself (forever, to any of
 * `servers`); subscriptions and consumers follow through `onReconnect`, which also tells them when a
 * closed connection was replaced by a new one.
 */
import type { Logger } from '@nestjs/common';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { ConnectionOptions, NatsConnection } from '@nats-io/transport-node';
import type { BackendEventHub } from '../../backend/backend-events';
import { BackendClosedError } from '../../errors/messaging.errors';
import { loadBrokerClient } from '../../backend/broker-client';
import { BrokerConnectError } from '../../backend/connect-error';
import type { ResolvedNatsOptions } from './nats-backend.options';
import { explainConnectFailure } from './nats-connect-errors';
import { ensureStreams } from './nats-declarations';
import { maskSecrets } from './nats-servers';
import { redactCredentials } from '../../backend/redact-credentials';
import { probeTls } from './nats-tls-probe';

/** The NATS server could not be reached, or has no JetStream. */
export class NatsConnectError extends BrokerConnectError {}

/** The two client packages, as `require` returns them. */
export interface NatsModules {
  readonly transport: typeof import('@nats-io/transport-node');
  readonly jetstream: typeof import('@nats-io/jetstream');
}

/** Loads the NATS client packages on demand so that apps on another backend run without them. */
export function loadNatsModules(load: (id: string) => unknown = require): NatsModules {
  const [transport, jetstream] = loadBrokerClient(
    'NatsBackend',
    ['@nats-io/transport-node', '@nats-io/jetstream'],
    load,
  ) as [NatsModules['transport'], NatsModules['jetstream']];
  return { transport, jetstream };
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

  /** An error's message as this connection may show it: no URL credentials, no password or token. */
  private describe(error: unknown): string {
    return maskSecrets(describe(error), [this.options.pass, this.options.token]);
  }

  /**
   * Why a TLS connection attempt that timed out failed, if the servers' TLS says (`nats-tls-probe.ts`):
   * a server that verifies clients refuses one without a certificate after the handshake, and
   * nats.js reports that as a bare timeout.
   */
  private async tlsCause(error: unknown, deadline: number): Promise<Error | undefined> {
    const { tls, servers } = this.options;
    if (!tls || !/timeout/i.test(describe(error))) return undefined;
    for (const server of servers) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      const found = await probeTls(server, tls, Math.min(1_000, left));
      if (found) return found;
    }
    return undefined;
  }

  /**
   * `error` as a cause that says nothing of credentials: itself when its message (and its own
   * cause's) hold none, else an Error with the redacted message, and the code that says what failed.
   */
  private redactedCause(error: unknown): unknown {
    const inner = (error as { cause?: unknown } | undefined)?.cause;
    const clean = (e: unknown) => {
      const message = (e as { message?: unknown } | undefined)?.message;
      return this.describe(e) === (typeof message === 'string' ? message : String(e));
    };
    if (clean(error) && (inner === undefined || clean(inner))) return error;
    const copy = new Error(this.describe(error)) as Error & { code?: unknown };
    copy.name = error instanceof Error ? error.name : 'Error';
    const code = (error as { code?: unknown }).code ?? (inner as { code?: unknown })?.code;
    if (code !== undefined) copy.code = code;
    return copy;
  }

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

  /** Resolves once connected (at once when it is), or at `deadline` or close: whether it is. */
  whenConnected(deadline: number): Promise<boolean> {
    if (this.hub.status === 'connected') return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (connected: boolean) => {
        off();
        clearTimeout(timer);
        resolve(connected);
      };
      const off = this.hub.on('status', (status) => {
        if (status === 'connected') done(true);
        else if (status === 'closed') done(false);
      });
      const timer = setTimeout(() => done(false), Math.max(0, deadline - Date.now()));
    });
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
    const { options } = this;
    while (!nc) {
      const left = deadline - Date.now();
      try {
        nc = await transport.connect({
          // Without credentials (`nats-servers.ts`): they go as options, and nowhere else.
          servers: [...options.servers],
          noRandomize: !options.randomizeServers,
          name: options.name,
          user: options.user,
          pass: options.pass,
          token: options.token,
          // nats.js hands what it does not know of (`servername`, `passphrase`, ...) to tls.connect().
          tls: options.tls as ConnectionOptions['tls'],
          // With TLS, part of what is left stays for the probe of a timeout (`tlsCause`).
          timeout: Math.max(
            100,
            Math.min(left - (options.tls ? Math.min(1_000, left / 3) : 0), 5_000),
          ),
          maxReconnectAttempts: -1,
          reconnectTimeWait: 500,
          pingInterval: options.pingIntervalMs,
          maxPingOut: options.maxPingsOutstanding,
          // No stack captured for the requests this backend still makes through nats.js (JetStream
          // API calls, confirmed acks): the errors it reports name what failed themselves.
          // Publishes and volatile requests do not go through nats.js requests at all.
          noAsyncTraces: true,
        });
      } catch (error) {
        lastError = (await this.tlsCause(error, deadline)) ?? error;
        const failure = explainConnectFailure(lastError);
        if (this.closed || !failure.transient || Date.now() + 200 >= deadline) {
          this.hub.setStatus('disconnected');
          throw new NatsConnectError(
            `NatsBackend could not connect to ${options.servers.join(', ')}` +
              (failure.transient ? ` within ${options.connectTimeoutMs} ms` : '') +
              ` (${this.describe(lastError)}). ${failure.fix}`,
            { cause: this.redactedCause(lastError) },
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
      this.logger.log(`Connected to NATS ${nc.getServer()} (streams ${this.options.prefix}-*)`);
      return link;
    } catch (error) {
      await nc.close().catch(() => undefined);
      this.hub.setStatus('disconnected');
      if (error instanceof BackendClosedError) throw error;
      throw new NatsConnectError(
        `NatsBackend connected to ${nc.getServer()} but cannot use JetStream there (${this.describe(error)}). ` +
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
        this.hub.emitError(new NatsConnectError(`NATS connection closed: ${this.describe(error)}`));
      this.hub.setStatus(this.closed ? 'closed' : 'disconnected');
    });
    for await (const status of nc.status()) {
      switch (status.type) {
        case 'disconnect':
          if (!this.closed) {
            this.logger.warn(`Lost the NATS connection to ${String(status.server)}; reconnecting`);
            this.hub.setStatus('reconnecting');
          }
          break;
        case 'reconnect':
          this.logger.log(`Reconnected to NATS ${String(status.server)}`);
          this.hub.setStatus('connected');
          this.onReconnect();
          break;
        case 'error':
          this.hub.emitError(new NatsConnectError(`NATS: ${this.describe(status.error)}`));
          break;
        default:
          break;
      }
    }
  }
}

/** An error's message, with the credentials of any URL in it redacted. */
export function describe(error: unknown): string {
  // Not `instanceof Error`: Node's own errors may come from another realm (a VM context, Jest).
  const message = (error as { message?: unknown } | undefined)?.message;
  const text = typeof message === 'string' ? message : String(error);
  // OpenSSL's own lines (`…:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:…`): the reason.
  return redactCredentials(/SSL routines:[^:]*:([^:]+):/.exec(text)?.[1] ?? text);
}
