import { backendFromUrl, type BrokerBackend, InMemoryBackend } from '@app/messaging';
import type { DatabaseOptions } from './database';
import { type DashboardAccess, dashboardAccessFromEnv } from './dashboard-access';

export const DEFAULT_BROKER_URL = 'amqp://guest:guest@127.0.0.1:5672';

/** The environment variables and defaults of one service. */
export interface ServiceEnvSpec {
  /** Variable holding the HTTP port, e.g. `ORDER_PORT`. */
  readonly portVariable: string;
  readonly defaultPort: number;
  /** Variable overriding the consumer group, e.g. `ORDER_SERVICE_NAME`. */
  readonly serviceVariable: string;
  /** Connection name shown by RabbitMQ. */
  readonly connectionName: string;
  /** Schema of the service's tables when `DATABASE_SCHEMA` is not set, e.g. `order_service`. */
  readonly defaultSchema: string;
}

/** A service's settings read from the environment. */
export interface ServiceConfig {
  readonly port: number;
  /** Consumer group override; `undefined` keeps the service's default name. */
  readonly service: string | undefined;
  readonly backend: BrokerBackend;
  /**
   * `DATABASE_URL` (PostgreSQL) and `DATABASE_SCHEMA` (default: the service's own, e.g.
   * `order_service`): state kept there, events through the outbox. Unset: in memory.
   */
  readonly database: DatabaseOptions | undefined;
  /** Who may open the dashboard at `/messaging`: `DASHBOARD_PASSWORD` (and `DASHBOARD_USER`), else public. */
  readonly dashboard: DashboardAccess;
}

/**
 * Reads the port and service-name variables of `spec`, `BROKER_URL` (default local RabbitMQ; its
 * scheme picks the backend, see {@link backendFrom}), `BROKER=memory` (the embedded broker: only
 * useful within one process), `BROKER_NAMESPACE`, `DATABASE_URL`, `DATABASE_SCHEMA`, and
 * `DASHBOARD_PASSWORD` / `DASHBOARD_USER` (the dashboard's guard; public without a password).
 */
export function serviceConfigFromEnv(
  spec: ServiceEnvSpec,
  env: NodeJS.ProcessEnv = process.env,
): ServiceConfig {
  return {
    port: portFrom(env[spec.portVariable], spec.defaultPort, spec.portVariable),
    service: env[spec.serviceVariable] || undefined,
    backend: env.BROKER === 'memory' ? new InMemoryBackend() : backendFrom(env, spec),
    database: databaseFrom(env, spec.defaultSchema),
    dashboard: dashboardAccessFromEnv(env),
  };
}

/**
 * The backend `BROKER_URL` names by its scheme (`backendFromUrl`: amqp://, amqps://, redis://,
 * rediss://, nats://, tls://). `BROKER_NAMESPACE` keeps services apart on a shared broker (the
 * backends' `namespace`); `BROKER_EXCHANGE`, its older name, is still read, told deprecated.
 */
function backendFrom(env: NodeJS.ProcessEnv, spec: ServiceEnvSpec): BrokerBackend {
  const url = env.BROKER_URL || DEFAULT_BROKER_URL;
  if (env.BROKER_EXCHANGE && !env.BROKER_NAMESPACE) {
    process.emitWarning('BROKER_EXCHANGE is deprecated: name it BROKER_NAMESPACE (same value).', {
      type: 'DeprecationWarning',
      code: 'NEST_MESSAGING_NAMESPACE',
    });
  }
  const namespace = env.BROKER_NAMESPACE || env.BROKER_EXCHANGE || undefined;
  return backendFromUrl(url, {
    namespace,
    connectionName: spec.connectionName,
    urlFrom: 'BROKER_URL',
  });
}

function databaseFrom(env: NodeJS.ProcessEnv, defaultSchema: string): DatabaseOptions | undefined {
  const url = env.DATABASE_URL;
  if (!url) return undefined;
  if (!/^postgres(ql)?:\/\//.test(url)) {
    throw new Error(`DATABASE_URL must be a PostgreSQL URL (postgres://user@host:5432/db)`);
  }
  const schema = env.DATABASE_SCHEMA || defaultSchema;
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) {
    throw new Error(
      `DATABASE_SCHEMA must be a plain identifier (letters, digits, '_'), got '${schema}'`,
    );
  }
  return { url, schema };
}

function portFrom(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${name} must be a port number from 0 to 65535, got '${value}'`);
  }
  return port;
}
