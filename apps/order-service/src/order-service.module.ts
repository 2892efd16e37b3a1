import { type DynamicModule, Module } from '@nestjs/common';
import {
  type BrokerBackend,
  MessagingModule,
  MessagingTransactions,
  PrometheusMessagingMetrics,
  type RetryOptions,
} from '@app/messaging';
import {
  type DashboardAccess,
  Database,
  type DatabaseOptions,
  OperationsModule,
  sampleDashboard,
} from '@app/service-kit';
import { InMemoryOrderRepository } from './orders/in-memory-order.repository';
import { ORDER_REPOSITORY, type OrderRepository } from './orders/order.repository';
import { OrdersController } from './orders/orders.controller';
import { ORDER_EVENTS_VIA_OUTBOX, OrdersService } from './orders/orders.service';
import { PostgresOrderRepository } from './orders/postgres-order.repository';
import { PaymentEventsController } from './orders/payment-events.controller';

/** Default consumer group of order-service. */
export const ORDER_SERVICE_NAME = 'order-service';

/** Retries of payment events: short, since the only transient failure is the repository. */
export const ORDER_SERVICE_RETRY: RetryOptions = {
  maxAttempts: 4,
  backoff: { initialDelayMs: 200, multiplier: 2, jitter: 0.1 },
};

/** What order-service is built from; everything but `backend` has a default. */
export interface OrderServiceOptions {
  /**
   * Who may open the dashboard at `/messaging` (`DASHBOARD_PASSWORD`): HTTP Basic with a password,
   * public without one. @default public
   */
  dashboard?: DashboardAccess;
  /** The broker, e.g. `new AmqpBackend({ url })` or `new InMemoryBackend()`. */
  backend: BrokerBackend;
  /** Consumer group (queue names derive from it). @default 'order-service' */
  service?: string;
  /** Retry policy of the payment-event handlers. @default ORDER_SERVICE_RETRY */
  retry?: RetryOptions;
  /** Where orders are kept. @default a new InMemoryOrderRepository */
  repository?: OrderRepository;
  /**
   * PostgreSQL (`DATABASE_URL`): orders are kept there and `order.created` goes through the outbox
   * in the same transaction, so `POST /orders` answers 201 while the broker is down.
   */
  database?: DatabaseOptions;
}

/**
 * order-service as a Nest module, buildable with any backend (tests, the demo, `main.ts`).
 *
 * @example
 * NestFactory.create(OrderServiceModule.register({ backend: new InMemoryBackend() }))
 */
@Module({})
export class OrderServiceModule {
  static register(options: OrderServiceOptions): DynamicModule {
    const database = options.database ? new Database(options.database) : undefined;
    const metrics = new PrometheusMessagingMetrics();
    return {
      module: OrderServiceModule,
      imports: [
        MessagingModule.forRoot({
          service: options.service ?? ORDER_SERVICE_NAME,
          backend: options.backend,
          retry: options.retry ?? ORDER_SERVICE_RETRY,
          store: database?.messageStore(),
          metrics,
        }),
        OperationsModule.register(metrics),
        sampleDashboard(options.dashboard),
      ],
      controllers: [OrdersController, PaymentEventsController],
      providers: [
        OrdersService,
        { provide: ORDER_EVENTS_VIA_OUTBOX, useValue: database !== undefined },
        ...(database ? [{ provide: Database, useFactory: () => database }] : []),
        {
          provide: ORDER_REPOSITORY,
          useFactory: async (transactions: MessagingTransactions) => {
            if (options.repository) return options.repository;
            if (!database) return new InMemoryOrderRepository();
            const repository = new PostgresOrderRepository(database, transactions);
            await repository.migrate();
            return repository;
          },
          inject: [MessagingTransactions],
        },
      ],
    };
  }
}
