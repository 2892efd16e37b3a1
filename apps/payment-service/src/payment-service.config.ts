import { serviceConfigFromEnv, type ServiceConfig } from '@app/service-kit';

export const DEFAULT_PAYMENT_PORT = 3001;

/**
 * payment-service settings: `PAYMENT_PORT` (default 3001), `PAYMENT_SERVICE_NAME`, and the broker variables
 * `BROKER_URL`, `BROKER=memory`, `BROKER_NAMESPACE`, and `DATABASE_URL` (PostgreSQL; in memory without it)
 * with `DATABASE_SCHEMA` (default `payment_service`), and `PAYMENT_GATEWAY_LATENCY_MS` (how long the
 * simulated gateway takes per charge, default 0).
 */
export function paymentServiceConfigFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): ServiceConfig & { gatewayLatencyMs: number } {
  const latency = env.PAYMENT_GATEWAY_LATENCY_MS;
  const gatewayLatencyMs = latency ? Number(latency) : 0;
  if (!Number.isInteger(gatewayLatencyMs) || gatewayLatencyMs < 0) {
    throw new Error(
      `PAYMENT_GATEWAY_LATENCY_MS must be a whole number of milliseconds, got '${latency}'`,
    );
  }
  const config = serviceConfigFromEnv(
    {
      portVariable: 'PAYMENT_PORT',
      defaultPort: DEFAULT_PAYMENT_PORT,
      serviceVariable: 'PAYMENT_SERVICE_NAME',
      connectionName: 'payment-service',
      defaultSchema: 'payment_service',
    },
    env,
  );
  return { ...config, gatewayLatencyMs };
}
