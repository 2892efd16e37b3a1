import type { INestApplication, LoggerService, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MessagingServer } from '@app/messaging';
import { OrderServiceModule, type OrderServiceOptions } from './order-service.module';

/** Options of {@link createOrderApp}. */
export interface OrderAppOptions extends OrderServiceOptions {
  /** HTTP port to listen on (0 = any free one); without it the app is initialised but not listening. */
  port?: number;
  /** Nest logger: a `LoggerService`, the levels to print, or `false` for none. */
  logger?: LoggerService | LogLevel[] | false;
}

/**
 * Builds and starts order-service: HTTP API plus its payment-event consumers, subscribed before
 * this resolves. Close it with `app.close()`.
 */
export async function createOrderApp(options: OrderAppOptions): Promise<INestApplication> {
  const app = await NestFactory.create(OrderServiceModule.register(options), {
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
