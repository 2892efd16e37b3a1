import { Inject, Injectable, Optional } from '@nestjs/common';
import type {
  BackendStatus,
  BrokerBackend,
  ConsumerState,
} from '../backend/broker-backend.interface';
import { MESSAGING_BACKEND } from '../messaging.constants';
import { OutboxRelay, type OutboxState } from '../store/outbox-relay';

/** How long a consumer may be away (a re-subscribe after a reconnect) before health says `down`. */
export const CONSUMER_GRACE_MS = 5_000;

/** Broker connectivity and consumers, as a health endpoint reports them. */
export interface MessagingHealth {
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
  /**
   * The outbox relay, while messages wait in the outbox: how many and, while publishing them fails
   * (broker down, a topic nobody consumes), the last error. It does not change `status`: writes still commit, and the
   * messages go out once the cause is gone.
   */
  readonly outbox?: OutboxState;
}

/**
 * Reports whether the broker is reachable and every handler is consuming, for `GET /health`
 * endpoints and readiness probes: a connected backend whose consumer vanished (its queue deleted, a
 * re-subscribe failing) does not take messages, and is `down` once that lasts.
 */
@Injectable()
export class MessagingHealthService {
  constructor(
    @Inject(MESSAGING_BACKEND) private readonly backend: BrokerBackend,
    @Optional() private readonly relay?: OutboxRelay,
  ) {}

  check(now: number = Date.now()): MessagingHealth {
    const connection = this.backend.status;
    const outbox = this.relay?.status;
    const consumers = this.backend.consumerStates?.();
    const gone = consumers?.some(
      (c) => c.detachedSince !== undefined && now - c.detachedSince >= CONSUMER_GRACE_MS,
    );
    return {
      status: connection === 'connected' && !gone ? 'up' : 'down',
      backend: this.backend.name,
      connection,
      ...(this.backend.blocked !== undefined ? { blocked: this.backend.blocked } : {}),
      ...(consumers ? { consumers } : {}),
      ...(outbox && (outbox.pending > 0 || outbox.lastError) ? { outbox } : {}),
    };
  }
}
