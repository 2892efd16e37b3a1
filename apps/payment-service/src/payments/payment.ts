/** Body of `order.created`, as payment-service reads it. */
export interface OrderToCharge {
  readonly orderId: string;
  readonly customerId: string;
  readonly amount: number;
  readonly cardToken: string;
}

/** Body of `payment.succeeded`. */
export interface PaymentSucceededEvent {
  readonly orderId: string;
  readonly paymentId: string;
  readonly amount: number;
}

/** Body of `payment.failed` (a business decline, final). */
export interface PaymentFailedEvent {
  readonly orderId: string;
  readonly reason: string;
}

/** The outcome of charging one order, kept so that it is never charged twice. */
export type PaymentRecord =
  | {
      readonly orderId: string;
      readonly outcome: 'succeeded';
      readonly paymentId: string;
      readonly amount: number;
      readonly decidedAt: string;
    }
  | {
      readonly orderId: string;
      readonly outcome: 'failed';
      readonly reason: string;
      readonly decidedAt: string;
    };
