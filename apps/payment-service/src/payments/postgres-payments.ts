import type { MessagingTransactions } from '@app/messaging';
import type { Database } from '@app/service-kit';
import type { PaymentRecord } from './payment';
import type { Charge, ChargeBook } from './payment-gateway';
import type { PaymentLedger } from './payment-ledger';

/** Tables of payment-service on PostgreSQL, created at start when missing. */
export function paymentTablesSql(database: Database): string {
  return `
  CREATE TABLE IF NOT EXISTS ${database.table('payment_ledger')} (
    order_id   text        PRIMARY KEY,
    outcome    text        NOT NULL,
    payment_id text,
    amount     numeric,
    reason     text,
    decided_at timestamptz NOT NULL
  );
  CREATE TABLE IF NOT EXISTS ${database.table('gateway_charges')} (
    id              bigserial   PRIMARY KEY,
    idempotency_key text        UNIQUE,
    order_id        text        NOT NULL,
    payment_id      text        NOT NULL,
    amount          numeric     NOT NULL,
    charged_at      timestamptz NOT NULL DEFAULT now()
  );
  CREATE INDEX IF NOT EXISTS gateway_charges_order ON ${database.table('gateway_charges')} (order_id, id);`;
}

interface LedgerRow {
  order_id: string;
  outcome: 'succeeded' | 'failed';
  payment_id: string | null;
  amount: string | null;
  reason: string | null;
  decided_at: Date;
}

/**
 * The ledger in PostgreSQL, written in the handler's transaction: it commits with the inbox entry
 * and the outcome's outbox message, or not at all.
 */
export class PostgresPaymentLedger implements PaymentLedger {
  constructor(
    private readonly database: Database,
    private readonly transactions: MessagingTransactions,
  ) {}

  /** A transaction-scoped advisory lock on the order: held until the handler's transaction ends. */
  async lock(orderId: string): Promise<void> {
    if (!this.transactions.active) {
      throw new Error(
        'PostgresPaymentLedger.lock() needs the transaction of an idempotent handler',
      );
    }
    await this.database.query(
      this.transactions,
      'SELECT true AS locked FROM pg_advisory_xact_lock(hashtext($1))',
      [`${this.database.table('payment_ledger')}:${orderId}`],
    );
  }

  async find(orderId: string): Promise<PaymentRecord | undefined> {
    const [row] = await this.database.query<LedgerRow>(
      this.transactions,
      `SELECT * FROM ${this.database.table('payment_ledger')} WHERE order_id = $1`,
      [orderId],
    );
    if (!row) return undefined;
    const decidedAt = row.decided_at.toISOString();
    return row.outcome === 'succeeded'
      ? {
          orderId: row.order_id,
          outcome: 'succeeded',
          paymentId: row.payment_id as string,
          amount: Number(row.amount),
          decidedAt,
        }
      : { orderId: row.order_id, outcome: 'failed', reason: row.reason ?? '', decidedAt };
  }

  async save(record: PaymentRecord): Promise<void> {
    const succeeded = record.outcome === 'succeeded';
    await this.database.query(
      this.transactions,
      `INSERT INTO ${this.database.table('payment_ledger')}
         (order_id, outcome, payment_id, amount, reason, decided_at)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [
        record.orderId,
        record.outcome,
        succeeded ? record.paymentId : null,
        succeeded ? record.amount : null,
        succeeded ? null : record.reason,
        record.decidedAt,
      ],
    );
  }
}

interface ChargeRow {
  order_id: string;
  payment_id: string;
  amount: string;
}

const toCharge = (row: ChargeRow): Charge => ({
  orderId: row.order_id,
  paymentId: row.payment_id,
  amount: Number(row.amount),
});

/**
 * The simulated gateway's own records, in PostgreSQL. Written outside the handler's transaction (a
 * real gateway is another system: its charge stays made when our transaction rolls back), and unique
 * per idempotency key, as a real gateway's.
 */
export class PostgresChargeBook implements ChargeBook {
  private readonly table: string;

  constructor(private readonly database: Database) {
    this.table = database.table('gateway_charges');
  }

  async byKey(idempotencyKey: string): Promise<Charge | undefined> {
    const { rows } = await this.database.pool.query<ChargeRow>(
      `SELECT order_id, payment_id, amount FROM ${this.table} WHERE idempotency_key = $1`,
      [idempotencyKey],
    );
    return rows[0] ? toCharge(rows[0]) : undefined;
  }

  async add(charge: Charge, idempotencyKey?: string): Promise<Charge> {
    const { rows } = await this.database.pool.query<ChargeRow>(
      `INSERT INTO ${this.table} (idempotency_key, order_id, payment_id, amount)
       VALUES ($1, $2, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING
       RETURNING order_id, payment_id, amount`,
      [idempotencyKey ?? null, charge.orderId, charge.paymentId, charge.amount],
    );
    if (rows[0]) return toCharge(rows[0]);
    return (await this.byKey(idempotencyKey as string)) as Charge;
  }

  async list(orderId?: string): Promise<Charge[]> {
    const { rows } = await this.database.pool.query<ChargeRow>(
      `SELECT order_id, payment_id, amount FROM ${this.table}
        WHERE $1::text IS NULL OR order_id = $1 ORDER BY id`,
      [orderId ?? null],
    );
    return rows.map(toCharge);
  }
}
