import { serviceConfigFromEnv, type ServiceConfig } from '@app/service-kit';

export const DEFAULT_PAYMENT_PORT = 3001;

/**
 * payment-service settings: `PAYMENT_PORT` (default 3001), `PAYMENT_SERVICE_NAME`, and the broker variables
 * `BROKER_URL`, `BROKER=memory` and `BROKER_EXCHANGE`.
 */
export function paymentServiceConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ServiceConfig {
  return serviceConfigFromEnv(
    {
      portVariable: 'PAYMENT_PORT',
      defaultPort: DEFAULT_PAYMENT_PORT,
      serviceVariable: 'PAYMENT_SERVICE_NAME',
      connectionName: 'payment-service',
    },
    env,
  );
}
