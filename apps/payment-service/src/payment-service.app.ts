import type { INestApplication } from '@nestjs/common';
import { type HybridAppOptions, startHybridApp } from '@app/service-kit';
import { PaymentServiceModule, type PaymentServiceOptions } from './payment-service.module';

/** Options of {@link createPaymentApp}. */
export interface PaymentAppOptions extends PaymentServiceOptions, HybridAppOptions {}

/**
 * Builds and starts payment-service: its `order.created` consumer (subscribed before this resolves)
 * and its HTTP API (health, dead letters). Close it with `app.close()`.
 */
export async function createPaymentApp(options: PaymentAppOptions): Promise<INestApplication> {
  return startHybridApp(PaymentServiceModule.register(options), options);
}
