import { serviceConfigFromEnv, type ServiceConfig } from '@app/service-kit';

export const DEFAULT_ORDER_PORT = 3000;

/**
 * order-service settings: `ORDER_PORT` (default 3000), `ORDER_SERVICE_NAME`, and the broker variables
 * `BROKER_URL`, `BROKER=memory`, `BROKER_NAMESPACE`, and `DATABASE_URL` (PostgreSQL; in memory without it)
 * with `DATABASE_SCHEMA` (default `order_service`).
 */
export function orderServiceConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ServiceConfig {
  return serviceConfigFromEnv(
    {
      portVariable: 'ORDER_PORT',
      defaultPort: DEFAULT_ORDER_PORT,
      serviceVariable: 'ORDER_SERVICE_NAME',
      connectionName: 'order-service',
      defaultSchema: 'order_service',
    },
    env,
  );
}
