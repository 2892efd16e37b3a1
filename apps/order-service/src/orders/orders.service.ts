import { randomUUID } from 'node:crypto';
import {
  Inject,
  Injectable,
  Logger,
  NotFoundException,
  ServiceUnavailableException,
} from '@nestjs/common';
import {
  MessageProducer,
  MessagingTransactions,
  Producer,
  UnrecoverableError,
  UnroutableError,
} from '@app/messaging';
import type { CreateOrderDto } from './create-order.dto';
import { isFinal, type Order, type OrderCreatedEvent, type OrderStatus } from './order';
import { ORDER_REPOSITORY, type OrderRepository } from './order.repository';

/**
 * Injection token: true when orders are in a database and `order.created` goes through the outbox in
 * the order's transaction (`DATABASE_URL`).
 */
export const ORDER_EVENTS_VIA_OUTBOX = Symbol('ORDER_EVENTS_VIA_OUTBOX');

/** What a payment event did to its order. */
export type PaymentOutcomeResult = 'applied' | 'duplicate' | 'ignored';

/** Places orders and moves them along as payment events arrive. */
@Injectable()
export class OrdersService {
  private readonly logger = new Logger('OrderService');

  constructor(
    @Inject(ORDER_REPOSITORY) private readonly orders: OrderRepository,
    @Producer('order.created') private readonly orderCreated: MessageProducer<OrderCreatedEvent>,
    private readonly transactions: MessagingTransactions,
    @Inject(ORDER_EVENTS_VIA_OUTBOX) private readonly viaOutbox: boolean,
  ) {}

  /**
   * Keeps a new order as `PENDING` and publishes `order.created`.
   *
   * With a database, the order and its event commit in one transaction (the outbox): the event goes
   * out when the broker takes it, however long that is, and a crash cannot keep one without the other.
   *
   * In memory, the order is saved first so that a fast payment event always finds it. When the broker
   * does not take the event (nobody consumes `order.created` yet, or the broker is unreachable) the
   * order is removed again and the caller gets a 503: an order that no payment will ever reach is not
   * kept.
   */
  async place(dto: CreateOrderDto): Promise<Order> {
    const now = new Date().toISOString();
    const order: Order = {
      id: randomUUID(),
      status: 'PENDING',
      customerId: dto.customerId,
      amount: dto.amount,
      cardToken: dto.cardToken,
      createdAt: now,
      updatedAt: now,
    };
    if (this.viaOutbox) return this.placeThroughOutbox(order);
    await this.orders.save(order);
    try {
      await this.orderCreated.publish(eventOf(order), { correlationId: order.id });
    } catch (error) {
      await this.orders.delete(order.id);
      throw this.notAccepted(order, error);
    }
    this.logger.log(
      `order ${order.id} placed (${order.amount} for ${order.customerId}, ${order.cardToken}) -> order.created published`,
    );
    return order;
  }

  private async placeThroughOutbox(order: Order): Promise<Order> {
    await this.transactions.run(async () => {
      await this.orders.save(order);
      await this.orderCreated.publish(eventOf(order), {
        correlationId: order.id,
        orderingKey: order.id,
      });
    });
    this.logger.log(
      `order ${order.id} placed (${order.amount} for ${order.customerId}, ${order.cardToken}) -> order.created in the outbox`,
    );
    return order;
  }

  async get(id: string): Promise<Order> {
    const order = await this.orders.findById(id);
    if (!order) throw new NotFoundException(`Order ${id} not found`);
    return order;
  }

  list(): Promise<Order[]> {
    return this.orders.findAll();
  }

  /** `payment.succeeded`: PENDING -> PAID, once. */
  markPaid(orderId: string, paymentId: string, attempt: number): Promise<PaymentOutcomeResult> {
    return this.settle(orderId, 'PAID', { paymentId }, `payment ${paymentId}`, attempt);
  }

  /** `payment.failed`: PENDING -> PAYMENT_FAILED, once. */
  markPaymentFailed(
    orderId: string,
    reason: string,
    attempt: number,
  ): Promise<PaymentOutcomeResult> {
    return this.settle(
      orderId,
      'PAYMENT_FAILED',
      { failureReason: reason },
      `payment declined: ${reason}`,
      attempt,
    );
  }

  /**
   * Moves a pending order to a final status. Idempotent: the same event again changes nothing, and a
   * final order never changes (an out-of-order or conflicting event is logged and ignored). An unknown
   * order can never be settled, so its event goes straight to the dead-letter queue.
   */
  private async settle(
    orderId: string,
    status: OrderStatus,
    changes: Partial<Order>,
    what: string,
    attempt: number,
  ): Promise<PaymentOutcomeResult> {
    const order = await this.orders.findById(orderId);
    if (!order) throw new UnrecoverableError(`order ${orderId} does not exist`);
    if (order.status === status) {
      this.logger.log(
        `order ${orderId} already ${status}; duplicate event ignored (attempt ${attempt})`,
      );
      return 'duplicate';
    }
    if (isFinal(order.status)) {
      this.logger.warn(
        `order ${orderId} is ${order.status}; ignoring a late ${status} event (${what})`,
      );
      return 'ignored';
    }
    await this.orders.save({ ...order, ...changes, status, updatedAt: new Date().toISOString() });
    this.logger.log(`order ${orderId} ${order.status} -> ${status} (${what})`);
    return 'applied';
  }

  private notAccepted(order: Order, error: unknown): ServiceUnavailableException {
    if (error instanceof UnroutableError) {
      this.logger.warn(`order ${order.id} refused: no service consumes order.created yet`);
      return new ServiceUnavailableException(
        `Order not accepted: no service consumes 'order.created' yet (is payment-service running?). ` +
          `The order was not kept; try again once payment-service is up.`,
      );
    }
    const reason = error instanceof Error ? error.message : String(error);
    this.logger.error(
      `order ${order.id} refused: order.created was not confirmed by the broker: ${reason}`,
    );
    return new ServiceUnavailableException(
      `Order not accepted: the message broker did not confirm 'order.created' (${reason}). The order was not kept; try again.`,
    );
  }
}

function eventOf(order: Order): OrderCreatedEvent {
  return {
    orderId: order.id,
    customerId: order.customerId,
    amount: order.amount,
    cardToken: order.cardToken,
  };
}
