import type { INestApplication } from '@nestjs/common';
import { type HybridAppOptions, startHybridApp } from '@app/service-kit';
import { OrderServiceModule, type OrderServiceOptions } from './order-service.module';

/** Options of {@link createOrderApp}. */
export interface OrderAppOptions extends OrderServiceOptions, HybridAppOptions {}

/**
 * Builds and starts order-service: HTTP API plus its payment-event consumers, subscribed before
 * this resolves. Close it with `app.close()`.
 */
export async function createOrderApp(options: OrderAppOptions): Promise<INestApplication> {
  return startHybridApp(OrderServiceModule.register(options), options);
}
