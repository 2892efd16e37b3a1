import { AmqpBackend, type BrokerBackend, InMemoryBackend } from '@app/messaging';

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
}

/** A service's settings read from the environment. */
export interface ServiceConfig {
  readonly port: number;
  /** Consumer group override; `undefined` keeps the service's default name. */
  readonly service: string | undefined;
  readonly backend: BrokerBackend;
}

/**
 * Reads the port and service-name variables of `spec`, `BROKER_URL` (default local RabbitMQ),
 * `BROKER=memory` (the embedded broker: only useful within one process) and `BROKER_EXCHANGE`.
 */
export function serviceConfigFromEnv(
  spec: ServiceEnvSpec,
  env: NodeJS.ProcessEnv = process.env,
): ServiceConfig {
  return {
    port: portFrom(env[spec.portVariable], spec.defaultPort, spec.portVariable),
    service: env[spec.serviceVariable] || undefined,
    backend:
      env.BROKER === 'memory'
        ? new InMemoryBackend()
        : new AmqpBackend({
            url: env.BROKER_URL || DEFAULT_BROKER_URL,
            exchange: env.BROKER_EXCHANGE || undefined,
            connectionName: spec.connectionName,
          }),
  };
}

function portFrom(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${name} must be a port number from 0 to 65535, got '${value}'`);
  }
  return port;
}
