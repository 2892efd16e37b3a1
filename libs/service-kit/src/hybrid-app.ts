import type { DynamicModule, INestApplication, LoggerService, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MessagingServer } from '@app/messaging';

/** How {@link startHybridApp} starts an app. */
export interface HybridAppOptions {
  /** HTTP port to listen on (0 = any free one); without it the app is initialised but not listening. */
  port?: number;
  /** Nest logger: a `LoggerService`, the levels to print, or `false` for none. */
  logger?: LoggerService | LogLevel[] | false;
}

/**
 * Creates a Nest app from `module` with `MessagingServer` connected as its microservice, starts the
 * consumers (subscribed before this resolves), then listens on `port` or just initialises. On a
 * failure half-way it closes what it opened before rethrowing.
 */
export async function startHybridApp(
  module: DynamicModule,
  options: HybridAppOptions,
): Promise<INestApplication> {
  const app = await NestFactory.create(module, { logger: options.logger, abortOnError: false });
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
