import { type INestApplication, Logger } from '@nestjs/common';
import type { ServiceConfig } from './service-config';
import { logDashboardAccess } from './dashboard-access';

/**
 * The `main.ts` of a sample service: reads its settings, starts it, closes it cleanly on
 * SIGTERM/SIGINT (stop consuming, let in-flight handlers finish, close the broker connection), and
 * exits with status 1 and one clear line when it cannot start.
 *
 * @example
 * runService('order-service', orderServiceConfigFromEnv, createOrderApp);
 */
export function runService<C extends ServiceConfig>(
  name: string,
  configFromEnv: () => C,
  create: (config: C) => Promise<INestApplication>,
): void {
  const logger = new Logger(name);
  const start = async (): Promise<void> => {
    const config = configFromEnv();
    const app = await create(config);
    app.enableShutdownHooks();
    logger.log(`${name} listening on ${await app.getUrl()} (broker: ${config.backend.name})`);
    logDashboardAccess(name, config.dashboard);
  };
  start().catch((error: unknown) => {
    logger.error(
      `${name} failed to start: ${error instanceof Error ? error.message : String(error)}`,
    );
    process.exit(1);
  });
}
