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
import { DeadLettersController } from './http/dead-letters.controller';
import { OrderCreatedConsumer } from './payments/order-created.consumer';
import { SimulatedPaymentGateway } from './payments/payment-gateway';
import {
  InMemoryPaymentLedger,
  PAYMENT_LEDGER,
  type PaymentLedger,
} from './payments/payment-ledger';
import { PaymentsController } from './payments/payments.controller';
import { PaymentsService } from './payments/payments.service';
import {
  paymentTablesSql,
  PostgresChargeBook,
  PostgresPaymentLedger,
} from './payments/postgres-payments';

/** Default consumer group of payment-service. */
export const PAYMENT_SERVICE_NAME = 'payment-service';

/** Retries of a charge: 4 attempts, 200 ms then 400 ms then 800 ms (plus up to 10% jitter). */
export const PAYMENT_SERVICE_RETRY: RetryOptions = {
  maxAttempts: 4,
  backoff: { initialDelayMs: 200, multiplier: 2, jitter: 0.1 },
};

/** What payment-service is built from; everything but `backend` has a default. */
export interface PaymentServiceOptions {
  /**
   * Who may open the dashboard at `/messaging` (`DASHBOARD_PASSWORD`): HTTP Basic with a password,
   * public without one. @default public
   */
  dashboard?: DashboardAccess;
  backend: BrokerBackend;
  /** Consumer group (queue names derive from it). @default 'payment-service' */
  service?: string;
  /** Retry policy of `order.created`. @default PAYMENT_SERVICE_RETRY */
  retry?: RetryOptions;
  /** The card gateway. @default a new SimulatedPaymentGateway */
  gateway?: SimulatedPaymentGateway;
  /** Where outcomes are kept. @default a new InMemoryPaymentLedger */
  ledger?: PaymentLedger;
  /**
   * PostgreSQL (`DATABASE_URL`): the ledger, the inbox, the outbox and the simulated gateway's
   * charges are kept there, so each order is charged once across instances and restarts.
   */
  database?: DatabaseOptions;
  /** How long each call of the simulated gateway takes (`PAYMENT_GATEWAY_LATENCY_MS`). @default 0 */
  gatewayLatencyMs?: number;
}

/**
 * payment-service as a Nest module, buildable with any backend.
 *
 * @example
 * NestFactory.create(PaymentServiceModule.register({ backend: new InMemoryBackend() }))
 */
@Module({})
export class PaymentServiceModule {
  static register(options: PaymentServiceOptions): DynamicModule {
    const database = options.database ? new Database(options.database) : undefined;
    const metrics = new PrometheusMessagingMetrics();
    return {
      module: PaymentServiceModule,
      imports: [
        MessagingModule.forRoot({
          service: options.service ?? PAYMENT_SERVICE_NAME,
          backend: options.backend,
          retry: options.retry ?? PAYMENT_SERVICE_RETRY,
          store: database?.messageStore(),
          metrics,
        }),
        OperationsModule.register(metrics),
        sampleDashboard(options.dashboard),
      ],
      controllers: [OrderCreatedConsumer, DeadLettersController, PaymentsController],
      providers: [
        PaymentsService,
        ...(database ? [{ provide: Database, useFactory: () => database }] : []),
        {
          provide: SimulatedPaymentGateway,
          useFactory: async () => {
            if (options.gateway) return options.gateway;
            const latencyMs = options.gatewayLatencyMs ?? 0;
            if (!database) return new SimulatedPaymentGateway(undefined, latencyMs);
            await database.migrate(paymentTablesSql(database));
            return new SimulatedPaymentGateway(new PostgresChargeBook(database), latencyMs);
          },
        },
        {
          provide: PAYMENT_LEDGER,
          useFactory: (transactions: MessagingTransactions) => {
            if (options.ledger) return options.ledger;
            return database
              ? new PostgresPaymentLedger(database, transactions)
              : new InMemoryPaymentLedger();
          },
          inject: [MessagingTransactions],
        },
      ],
    };
  }
}
