import { Inject, Injectable, Optional } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import type {
  BackendStatus,
  BrokerBackend,
  ConsumerState,
} from '../backend/broker-backend.interface';
import { MESSAGING_BACKEND, MESSAGING_OPTIONS } from '../messaging.constants';
import {
  DEFAULT_CONNECTION,
  DEFAULT_CONSUMER_GRACE_MS,
  type ResolvedMessagingOptions,
} from '../options/messaging-options';
import { connectionsOf, type MessagingConnection } from '../server/messaging-connection';
import { MessagingServer } from '../server/messaging.server';
import { MessagingWiringCheck } from '../server/messaging-wiring.check';
import { OutboxRelay, type OutboxState } from '../store/outbox-relay';

/**
 * How long a consumer may be away (a re-subscribe after a reconnect) before health says `down`, by
 * default (`health.consumerGraceMs`).
 */
export const CONSUMER_GRACE_MS = DEFAULT_CONSUMER_GRACE_MS;

/** One `@Consume` handler and whether its consumer is attached. */
export interface HandlerHealth {
  /** `Class.method` */
  readonly handler: string;
  readonly queue: string;
  readonly attached: boolean;
  /** Since when (epoch ms) it has had no consumer. */
  readonly detachedSince?: number;
  /** `MessagingServer.pause()` holds its messages (a paused handler does not make health down). */
  readonly paused?: true;
  /**
   * Its circuit breaker holds its messages (`open`) or tries one (`half-open`); absent while closed.
   * It does not make health down: the broker is reachable, the handler's dependency is not.
   */
  readonly circuit?: 'open' | 'half-open';
}

/** One connection's broker and the handlers consuming on it. */
export interface ConnectionHealth {
  /** `up` when the backend is connected and no consumer has been gone for `CONSUMER_GRACE_MS`. */
  readonly status: 'up' | 'down';
  /** The backend's name (`memory`, `amqp`). */
  readonly backend: string;
  readonly connection: BackendStatus;
  /**
   * True while the broker blocks publishing (RabbitMQ's memory or disk alarm): publishes wait,
   * consumers go on, so `status` stays as it is. When the backend reports it (`AmqpBackend` does).
   */
  readonly blocked?: boolean;
  /** Each subscription, when the backend reports them (`AmqpBackend` does). */
  readonly consumers?: readonly ConsumerState[];
  /** Each handler of this app and its consumer, when the backend reports consumers. */
  readonly handlers?: readonly HandlerHealth[];
}

/**
 * Broker connectivity and consumers, as a health endpoint reports them: the default connection's
 * (the fields it extends), the outbox, and the app's further connections.
 */
export interface MessagingHealth extends ConnectionHealth {
  /**
   * Why `status` is `down` when no broker or consumer says so: the app declares `@Consume` handlers
   * but never started `MessagingServer`, 5 s after start-up. It names the two lines that fix it.
   */
  readonly reason?: string;
  /**
   * The outbox relay, while messages wait in the outbox: how many and, while publishing them fails
   * (broker down, a topic nobody consumes), the last error. It does not change `status`: writes still commit, and the
   * messages go out once the cause is gone.
   */
  readonly outbox?: OutboxState;
  /**
   * The app's further connections (`forRoot({ name })`) by name, when it has any; `status` is `down`
   * when one of them is. The fields above are the default connection's.
   */
  readonly connections?: Readonly<Record<string, ConnectionHealth>>;
}

/**
 * Reports whether the broker is reachable and every handler is consuming, for `GET /health`
 * endpoints and readiness probes: a connected backend whose consumer vanished (its queue deleted, a
 * re-subscribe failing) does not take messages, and is `down` once that lasts; so is an app whose
 * `@Consume` handlers never got a started `MessagingServer` (`MessagingWiringCheck`), with a `reason`.
 */
@Injectable()
export class MessagingHealthService {
  private readonly consumerGraceMs: number;
  /** The app's further connections, found on the first check (the app has started by then). */
  private others?: readonly MessagingConnection[];

  constructor(
    @Inject(MESSAGING_BACKEND) private readonly backend: BrokerBackend,
    @Optional() private readonly relay?: OutboxRelay,
    @Optional() @Inject(MESSAGING_OPTIONS) options?: ResolvedMessagingOptions,
    @Optional() private readonly server?: MessagingServer,
    @Optional() private readonly discovery?: DiscoveryService,
    @Optional() private readonly wiring?: MessagingWiringCheck,
  ) {
    this.consumerGraceMs = options?.health.consumerGraceMs ?? DEFAULT_CONSUMER_GRACE_MS;
  }

  check(now: number = Date.now()): MessagingHealth {
    const outbox = this.relay?.status;
    const own = this.connectionHealth(this.backend, DEFAULT_CONNECTION, now);
    this.others ??= this.discovery
      ? connectionsOf(this.discovery).filter((c) => c.name !== DEFAULT_CONNECTION)
      : [];
    const connections =
      this.others.length > 0
        ? Object.fromEntries(
            this.others.map((c) => [c.name, this.connectionHealth(c.backend, c.name, now)]),
          )
        : undefined;
    // Connected, with nothing consuming: handlers declared, the server never started.
    const reason = this.wiring?.unstarted(now);
    const down =
      reason !== undefined ||
      (connections && Object.values(connections).some((c) => c.status === 'down'));
    return {
      ...own,
      ...(down ? { status: 'down' as const } : {}),
      ...(reason !== undefined ? { reason } : {}),
      ...(outbox && (outbox.pending > 0 || outbox.lastError) ? { outbox } : {}),
      ...(connections ? { connections } : {}),
    };
  }

  private connectionHealth(backend: BrokerBackend, name: string, now: number): ConnectionHealth {
    const connection = backend.status;
    const consumers = backend.consumerStates?.();
    const gone = consumers?.some(
      (c) => c.detachedSince !== undefined && now - c.detachedSince >= this.consumerGraceMs,
    );
    const handlers =
      consumers && this.server ? handlersOf(this.server, name, consumers) : undefined;
    return {
      status: connection === 'connected' && !gone ? 'up' : 'down',
      backend: backend.name,
      connection,
      ...(backend.blocked !== undefined ? { blocked: backend.blocked } : {}),
      ...(consumers ? { consumers } : {}),
      ...(handlers && handlers.length > 0 ? { handlers } : {}),
    };
  }
}

/** The server's handlers with the state of the consumer of their queue (none yet: not attached). */
function handlersOf(
  server: MessagingServer,
  connection: string,
  consumers: readonly ConsumerState[],
): HandlerHealth[] {
  const byQueue = new Map(consumers.map((c) => [c.queue, c]));
  const mine = server.handlers.filter((h) => h.connection === connection);
  return mine.map(({ handler, queue, paused, circuit }) => {
    const consumer = byQueue.get(queue);
    return {
      handler,
      queue,
      attached: consumer?.attached ?? false,
      ...(consumer?.detachedSince !== undefined ? { detachedSince: consumer.detachedSince } : {}),
      ...(paused ? { paused: true as const } : {}),
      ...(circuit && circuit !== 'closed' ? { circuit } : {}),
    };
  });
}
