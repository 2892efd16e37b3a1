/**
 * The sample services on RabbitMQ + PostgreSQL for the exactly-once scenarios: payment-service as OS
 * processes run from source (scripts/faults-register.js), order-service in the test process, orders
 * placed over HTTP, and the counts read from the database.
 */
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { AmqpBackend } from '@app/messaging';
import { waitFor } from '@app/messaging/testing';
import {
  sqlOnTestDatabase,
  TEST_DATABASE_URL,
} from '../../../libs/messaging/src/testing/postgres.fixture';
import { createOrderApp } from '../../../apps/order-service/src/order-service.app';
import { freePort, ServiceProcess } from '../../support/service-process';

const ROOT = join(__dirname, '..', '..', '..');
const REGISTER = join(ROOT, 'scripts', 'faults-register.js');
const PAYMENT_MAIN = join(ROOT, 'apps', 'payment-service', 'src', 'main.ts');

export const TOKENS = ['tok_ok', 'tok_ok', 'tok_ok', 'tok_flaky', 'tok_declined'] as const;

/** A payment-service process on `brokerUrl` and the shared schema; resolves once `/health` answers. */
export async function startPaymentProcess(
  brokerUrl: string,
  schema: string,
  name: string,
): Promise<ServiceProcess & { port: number }> {
  const port = await freePort();
  const child = new ServiceProcess(
    name,
    PAYMENT_MAIN,
    {
      BROKER_URL: brokerUrl,
      PAYMENT_PORT: String(port),
      DATABASE_URL: TEST_DATABASE_URL,
      DATABASE_SCHEMA: schema,
      // A 100 ms gateway call, charged half-way: a kill often lands between the charge and the commit.
      PAYMENT_GATEWAY_LATENCY_MS: '100',
    },
    ['-r', REGISTER],
  );
  try {
    await waitFor(
      async () => {
        if (!child.running) throw new Error(`${name} exited:\n${child.log}`);
        return (await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined))?.ok === true;
      },
      { timeoutMs: 60_000, intervalMs: 200, message: `${name} healthy` },
    );
  } catch (error) {
    await child.stop('SIGKILL');
    throw error;
  }
  return Object.assign(child, { port });
}

/** order-service in this process, on `brokerUrl`, with its orders and outbox in `schema`. */
export function startOrderService(brokerUrl: string, schema: string): Promise<INestApplication> {
  return createOrderApp({
    backend: new AmqpBackend({ url: brokerUrl, connectionName: 'faults-order-service' }),
    database: { url: TEST_DATABASE_URL, schema },
    port: 0,
    logger: ['error'],
  });
}

/** Places `count` orders over HTTP, `concurrency` at a time; calls `onPlaced(n)` after each. */
export async function placeOrders(
  orderUrl: string,
  count: number,
  concurrency: number,
  onPlaced: (placed: number) => void | Promise<void> = () => undefined,
): Promise<Map<string, string>> {
  const tokenOf = new Map<string, string>();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const cardToken = TOKENS[i % TOKENS.length];
      const response = await fetch(`${orderUrl}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ customerId: `c-${i}`, amount: 10 + (i % 7), cardToken }),
      });
      if (response.status !== 201) {
        throw new Error(`POST /orders answered ${response.status}: ${await response.text()}`);
      }
      const { id } = (await response.json()) as { id: string };
      tokenOf.set(id, cardToken);
      await onPlaced(tokenOf.size);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return tokenOf;
}

/** What the database says at the end: order statuses, charges and what is left in the outboxes. */
export interface ExactlyOnceCounts {
  readonly orders: Record<string, number>;
  /** Orders whose status does not match their token (PAID for ok/flaky, PAYMENT_FAILED for declined). */
  readonly wrongStatus: number;
  readonly charges: number;
  /** Orders charged more than once by the gateway. */
  readonly chargedTwice: number;
  /** PAID orders without exactly one charge. */
  readonly paidWithoutOneCharge: number;
  readonly ledgerRows: number;
  readonly outboxLeft: number;
}

export async function countEffects(
  orderSchema: string,
  paymentSchema: string,
  tokenOf: Map<string, string>,
): Promise<ExactlyOnceCounts> {
  const orders = await sqlOnTestDatabase(`SELECT id, status FROM "${orderSchema}".orders`);
  const byStatus: Record<string, number> = {};
  let wrongStatus = 0;
  for (const { id, status } of orders as { id: string; status: string }[]) {
    byStatus[status] = (byStatus[status] ?? 0) + 1;
    const expected = tokenOf.get(id) === 'tok_declined' ? 'PAYMENT_FAILED' : 'PAID';
    if (status !== expected) wrongStatus++;
  }
  const [charges] = await sqlOnTestDatabase(
    `SELECT count(*)::int AS n FROM "${paymentSchema}".gateway_charges`,
  );
  const [twice] = await sqlOnTestDatabase(
    `SELECT count(*)::int AS n FROM (SELECT order_id FROM "${paymentSchema}".gateway_charges
       GROUP BY order_id HAVING count(*) > 1) t`,
  );
  const [paidWithout] = await sqlOnTestDatabase(
    `SELECT count(*)::int AS n FROM "${orderSchema}".orders o
      WHERE o.status = 'PAID'
        AND (SELECT count(*) FROM "${paymentSchema}".gateway_charges c WHERE c.order_id = o.id) <> 1`,
  );
  const [ledger] = await sqlOnTestDatabase(
    `SELECT count(*)::int AS n FROM "${paymentSchema}".payment_ledger`,
  );
  const [outbox] = await sqlOnTestDatabase(
    `SELECT (SELECT count(*) FROM "${orderSchema}".messaging_outbox)
          + (SELECT count(*) FROM "${paymentSchema}".messaging_outbox) AS n`,
  );
  return {
    orders: byStatus,
    wrongStatus,
    charges: Number(charges.n),
    chargedTwice: Number(twice.n),
    paidWithoutOneCharge: Number(paidWithout.n),
    ledgerRows: Number(ledger.n),
    outboxLeft: Number(outbox.n),
  };
}

/** Orders still `PENDING`. */
export async function pendingOrders(orderSchema: string): Promise<number> {
  const [row] = await sqlOnTestDatabase(
    `SELECT count(*)::int AS n FROM "${orderSchema}".orders WHERE status = 'PENDING'`,
  );
  return Number(row.n);
}
