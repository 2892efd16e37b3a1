import { Inject, Injectable } from '@nestjs/common';
import type { BackendStatus, BrokerBackend } from '../backend/broker-backend.interface';
import { MESSAGING_BACKEND } from '../messaging.constants';

/** Broker connectivity, as a health endpoint reports it. */
export interface MessagingHealth {
  /** `up` when the backend is connected. */
  readonly status: 'up' | 'down';
  /** The backend's name (`memory`, `amqp`). */
  readonly backend: string;
  readonly connection: BackendStatus;
}

/**
 * Reports whether the broker is reachable, for `GET /health` endpoints and readiness probes.
 */
@Injectable()
export class MessagingHealthService {
  constructor(@Inject(MESSAGING_BACKEND) private readonly backend: BrokerBackend) {}

  check(): MessagingHealth {
    const connection = this.backend.status;
    return {
      status: connection === 'connected' ? 'up' : 'down',
      backend: this.backend.name,
      connection,
    };
  }
}
