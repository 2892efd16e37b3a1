import { runService } from '@app/service-kit';
import { createPaymentApp } from './payment-service.app';
import { paymentServiceConfigFromEnv } from './payment-service.config';

runService('payment-service', paymentServiceConfigFromEnv, createPaymentApp);
