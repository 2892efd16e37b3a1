/** Where an order is in its life. `PAID` and `PAYMENT_FAILED` are final. */
export type OrderStatus = 'PENDING' | 'PAID' | 'PAYMENT_FAILED';

/** An order as the API returns it. */
export interface Order {
  readonly id: string;
  readonly status: OrderStatus;
  readonly customerId: string;
  readonly amount: number;
  readonly cardToken: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  /** The payment service's id of the charge, once `PAID`. */
  readonly paymentId?: string;
  /** Why the payment was declined, once `PAYMENT_FAILED`. */
  readonly failureReason?: string;
}

/** The body of `order.created`, the contract with payment-service. */
export interface OrderCreatedEvent {
  readonly orderId: string;
  readonly customerId: string;
  readonly amount: number;
  readonly cardToken: string;
}

/** True once the order can no longer change. */
export function isFinal(status: OrderStatus): boolean {
  return status !== 'PENDING';
}
