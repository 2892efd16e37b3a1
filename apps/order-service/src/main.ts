import { runService } from '@app/service-kit';
import { createOrderApp } from './order-service.app';
import { orderServiceConfigFromEnv } from './order-service.config';

runService('order-service', orderServiceConfigFromEnv, createOrderApp);
