import { Inject, Injectable } from '@nestjs/common';
import type {
  BackendStatus,
  BrokerBackend,
  ConsumerState,
} from '../backend/broker-backend.interface';
import { MESSAGING_BACKEND } from '../messaging.constants';

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
}

/**
 * Reports whether the broker is reachable and every handler is consuming, for `GET /health`
 * endpoints and readiness probes: a connected backend whose consumer vanished (its queue deleted, a
 * re-subscribe failing) does not take messages, and is `down` once that lasts.
 */
@Injectable()
export class MessagingHealthService {
  constructor(@Inject(MESSAGING_BACKEND) private readonly backend: BrokerBackend) {}

  check(now: number = Date.now()): MessagingHealth {
    const connection = this.backend.status;
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
    };
  }
}
