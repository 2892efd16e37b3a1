import { Logger } from '@nestjs/common';
import { createOrderApp } from './order-service.app';
import { orderServiceConfigFromEnv } from './order-service.config';

async function bootstrap(): Promise<void> {
  const config = orderServiceConfigFromEnv();
  const app = await createOrderApp({
    backend: config.backend,
    service: config.service,
    port: config.port,
  });
  // SIGTERM/SIGINT: stop consuming, let in-flight handlers finish, close the broker connection.
  app.enableShutdownHooks();
  new Logger('OrderService').log(
    `order-service listening on ${await app.getUrl()} (broker: ${config.backend.name})`,
  );
}

bootstrap().catch((error: unknown) => {
  new Logger('OrderService').error(
    `order-service failed to start: ${error instanceof Error ? error.message : String(error)}`,
  );
  process.exit(1);
});
