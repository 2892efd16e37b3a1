import type { INestApplication, LoggerService, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MessagingServer } from '@app/messaging';
import { PaymentServiceModule, type PaymentServiceOptions } from './payment-service.module';

/** Options of {@link createPaymentApp}. */
export interface PaymentAppOptions extends PaymentServiceOptions {
  /** HTTP port to listen on (0 = any free one); without it the app is initialised but not listening. */
  port?: number;
  /** Nest logger: a `LoggerService`, the levels to print, or `false` for none. */
  logger?: LoggerService | LogLevel[] | false;
}

/**
 * Builds and starts payment-service: its `order.created` consumer (subscribed before this resolves)
 * and its HTTP API (health, dead letters). Close it with `app.close()`.
 */
export async function createPaymentApp(options: PaymentAppOptions): Promise<INestApplication> {
  const app = await NestFactory.create(PaymentServiceModule.register(options), {
    logger: options.logger,
    abortOnError: false,
  });
  try {
    app.connectMicroservice({ strategy: app.get(MessagingServer) }, { inheritAppConfig: true });
    await app.startAllMicroservices();
    if (options.port !== undefined) await app.listen(options.port);
    else await app.init();
    return app;
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
}
