import { AmqpBackend, type BrokerBackend, InMemoryBackend } from '@app/messaging';

export const DEFAULT_BROKER_URL = 'amqp://guest:guest@127.0.0.1:5672';
export const DEFAULT_ORDER_PORT = 3000;

/** order-service settings read from the environment. */
export interface OrderServiceConfig {
  readonly port: number;
  readonly service: string | undefined;
  readonly backend: BrokerBackend;
}

/**
 * Reads `ORDER_PORT` (default 3000), `BROKER_URL` (default local RabbitMQ), `BROKER=memory` (the
 * embedded broker: only useful within one process), `BROKER_EXCHANGE` and `ORDER_SERVICE_NAME`.
 */
export function orderServiceConfigFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): OrderServiceConfig {
  return {
    port: portFrom(env.ORDER_PORT, DEFAULT_ORDER_PORT, 'ORDER_PORT'),
    service: env.ORDER_SERVICE_NAME || undefined,
    backend:
      env.BROKER === 'memory'
        ? new InMemoryBackend()
        : new AmqpBackend({
            url: env.BROKER_URL || DEFAULT_BROKER_URL,
            exchange: env.BROKER_EXCHANGE || undefined,
            connectionName: 'order-service',
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
