import type { PaymentRecord } from './payment';

/** Injection token of the {@link PaymentLedger}. */
export const PAYMENT_LEDGER = Symbol('PAYMENT_LEDGER');

/** The outcome of each charged order, keyed by order id: what makes charging idempotent. */
export interface PaymentLedger {
  /**
   * Until the transaction in scope ends, no other delivery of the order (another message id, another
   * instance) gets past this: what it then finds is what this one committed.
   */
  lock(orderId: string): Promise<void>;
  find(orderId: string): Promise<PaymentRecord | undefined>;
  save(record: PaymentRecord): Promise<void>;
}

/** A ledger in a map. Lost on restart: a durable store is what makes idempotency survive a crash. */
export class InMemoryPaymentLedger implements PaymentLedger {
  private readonly records = new Map<string, PaymentRecord>();

  /** One process, writes at once: the service's per-order chain is the lock. */
  async lock(): Promise<void> {}

  async find(orderId: string): Promise<PaymentRecord | undefined> {
    return this.records.get(orderId);
  }

  async save(record: PaymentRecord): Promise<void> {
    this.records.set(record.orderId, record);
  }
}
