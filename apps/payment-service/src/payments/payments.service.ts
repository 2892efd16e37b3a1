import { Inject, Injectable, Logger, NotFoundException } from '@nestjs/common';
import { MessageProducer, Producer } from '@app/messaging';
import type {
  OrderToCharge,
  PaymentFailedEvent,
  PaymentRecord,
  PaymentSucceededEvent,
} from './payment';
import { PaymentDeclinedError, SimulatedPaymentGateway } from './payment-gateway';
import { PAYMENT_LEDGER, type PaymentLedger } from './payment-ledger';

/** Where a delivery of `order.created` came from, for logs and the flaky simulation. */
export interface DeliveryInfo {
  readonly attempt: number;
  readonly correlationId?: string;
  /** The message id: the gateway's idempotency key, so a redelivery never charges twice. */
  readonly messageId?: string;
}

/** What `GET /payments/:orderId` shows. */
export interface PaymentView {
  readonly record?: PaymentRecord;
  /** Successful gateway charges of the order: never more than 1. */
  readonly charges: number;
  /** Deliveries of `order.created` handled for the order (redeliveries and replays included). */
  readonly deliveries: number;
}

/**
 * Charges orders exactly once and announces the outcome. The outcome is recorded before it is
 * published, so a delivery that comes again (retry after a failed publish, redelivery, dead-letter
 * replay) re-publishes the recorded outcome instead of charging again.
 */
@Injectable()
export class PaymentsService {
  private readonly logger = new Logger('PaymentService');
  /**
   * Per-order chain in this process; the ledger's lock holds the order until the handler's
   * transaction ends, across instances too.
   */
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly deliveries = new Map<string, number>();

  constructor(
    private readonly gateway: SimulatedPaymentGateway,
    @Inject(PAYMENT_LEDGER) private readonly ledger: PaymentLedger,
    @Producer('payment.succeeded')
    private readonly succeeded: MessageProducer<PaymentSucceededEvent>,
    @Producer('payment.failed') private readonly failed: MessageProducer<PaymentFailedEvent>,
  ) {}

  /** Charges `order` unless it already was, then publishes the outcome. Throws on a transient failure. */
  process(order: OrderToCharge, delivery: DeliveryInfo): Promise<void> {
    return this.serialized(order.orderId, async () => {
      this.deliveries.set(order.orderId, (this.deliveries.get(order.orderId) ?? 0) + 1);
      await this.ledger.lock(order.orderId);
      let record = await this.ledger.find(order.orderId);
      if (record) {
        this.logger.log(
          `order ${order.orderId} already ${record.outcome}: not charging again, re-publishing the outcome`,
        );
      } else {
        record = await this.charge(order, delivery);
        await this.ledger.save(record);
      }
      await this.publish(record, delivery.correlationId ?? order.orderId);
    });
  }

  async view(orderId: string): Promise<PaymentView> {
    const record = await this.ledger.find(orderId);
    const deliveries = this.deliveries.get(orderId) ?? 0;
    if (!record && deliveries === 0) throw new NotFoundException(`No payment for order ${orderId}`);
    return { record, charges: await this.gateway.chargeCount(orderId), deliveries };
  }

  private async charge(order: OrderToCharge, delivery: DeliveryInfo): Promise<PaymentRecord> {
    const { attempt, messageId } = delivery;
    const at = `order ${order.orderId} (${order.cardToken}) attempt ${attempt}`;
    const decidedAt = new Date().toISOString();
    try {
      const receipt = await this.gateway.charge({ ...order, attempt, idempotencyKey: messageId });
      this.logger.log(`${at}: charged ${order.amount} -> ${receipt.paymentId}`);
      return {
        orderId: order.orderId,
        outcome: 'succeeded',
        paymentId: receipt.paymentId,
        amount: order.amount,
        decidedAt,
      };
    } catch (error) {
      if (error instanceof PaymentDeclinedError) {
        this.logger.log(`${at}: declined (${error.message}), final`);
        return { orderId: order.orderId, outcome: 'failed', reason: error.message, decidedAt };
      }
      this.logger.warn(`${at}: ${error instanceof Error ? error.message : String(error)}`);
      throw error;
    }
  }

  private async publish(record: PaymentRecord, correlationId: string): Promise<void> {
    if (record.outcome === 'succeeded') {
      await this.succeeded.publish(
        { orderId: record.orderId, paymentId: record.paymentId, amount: record.amount },
        { correlationId },
      );
    } else {
      await this.failed.publish(
        { orderId: record.orderId, reason: record.reason },
        { correlationId },
      );
    }
    this.logger.log(`order ${record.orderId}: payment.${record.outcome} published`);
  }

  private serialized<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(task);
    this.locks.set(key, next);
    void next
      .catch(() => undefined)
      .finally(() => {
        if (this.locks.get(key) === next) this.locks.delete(key);
      });
    return next;
  }
}
