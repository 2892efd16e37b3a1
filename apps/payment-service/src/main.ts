import { Logger } from '@nestjs/common';
import { createPaymentApp } from './payment-service.app';
import { paymentServiceConfigFromEnv } from './payment-service.config';

async function bootstrap(): Promise<void> {
  const config = paymentServiceConfigFromEnv();
  const app = await createPaymentApp({
    backend: config.backend,
    service: config.service,
    port: config.port,
  });
  // SIGTERM/SIGINT: stop consuming, let in-flight charges finish, close the broker connection.
  app.enableShutdownHooks();
  new Logger('PaymentService').log(
    `payment-service listening on ${await app.getUrl()} (broker: ${config.backend.name})`,
  );
}

bootstrap().catch((error: unknown) => {
  new Logger('PaymentService').error(
    `payment-service failed to start: ${error instanceof Error ? error.message : String(error)}`,
  );
  process.exit(1);
});
