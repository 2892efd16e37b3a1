import type { MessagingTransactions } from '@app/messaging';
import type { Database } from '@app/service-kit';
import type { Order, OrderStatus } from './order';
import type { OrderRepository } from './order.repository';

/** The table of {@link PostgresOrderRepository}, created at start when missing. */
export function ordersTableSql(table: string): string {
  return `CREATE TABLE IF NOT EXISTS ${table} (
    id             text        PRIMARY KEY,
    status         text        NOT NULL,
    customer_id    text        NOT NULL,
    amount         numeric     NOT NULL,
    card_token     text        NOT NULL,
    payment_id     text,
    failure_reason text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
  )`;
}

interface OrderRow {
  id: string;
  status: OrderStatus;
  customer_id: string;
  amount: string;
  card_token: string;
  payment_id: string | null;
  failure_reason: string | null;
  created_at: Date;
  updated_at: Date;
}

/**
 * Orders in PostgreSQL. Writes go through the transaction in scope, so `place()` commits the order
 * and its `order.created` outbox message together: both or neither, whatever crashes.
 */
export class PostgresOrderRepository implements OrderRepository {
  private readonly table: string;

  constructor(
    private readonly database: Database,
    private readonly transactions: MessagingTransactions,
  ) {
    this.table = database.table('orders');
  }

  /** Creates the table when missing. */
  migrate(): Promise<void> {
    return this.database.migrate(ordersTableSql(this.table));
  }

  async save(order: Order): Promise<void> {
    await this.database.query(
      this.transactions,
      `INSERT INTO ${this.table} (id, status, customer_id, amount, card_token, payment_id,
                                   failure_reason, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, payment_id = EXCLUDED.payment_id,
         failure_reason = EXCLUDED.failure_reason, updated_at = EXCLUDED.updated_at`,
      [
        order.id,
        order.status,
        order.customerId,
        order.amount,
        order.cardToken,
        order.paymentId ?? null,
        order.failureReason ?? null,
        order.createdAt,
        order.updatedAt,
      ],
    );
  }

  async findById(id: string): Promise<Order | undefined> {
    const [row] = await this.database.query<OrderRow>(
      this.transactions,
      `SELECT * FROM ${this.table} WHERE id = $1`,
      [id],
    );
    return row ? toOrder(row) : undefined;
  }

  async delete(id: string): Promise<void> {
    await this.database.query(this.transactions, `DELETE FROM ${this.table} WHERE id = $1`, [id]);
  }

  async findAll(): Promise<Order[]> {
    const rows = await this.database.query<OrderRow>(
      this.transactions,
      `SELECT * FROM ${this.table} ORDER BY created_at`,
    );
    return rows.map(toOrder);
  }
}

function toOrder(row: OrderRow): Order {
  return {
    id: row.id,
    status: row.status,
    customerId: row.customer_id,
    amount: Number(row.amount),
    cardToken: row.card_token,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    ...(row.payment_id !== null ? { paymentId: row.payment_id } : {}),
    ...(row.failure_reason !== null ? { failureReason: row.failure_reason } : {}),
  };
}
