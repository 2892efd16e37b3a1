import { randomUUID } from 'node:crypto';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import type { BrokerBackend } from '@app/messaging';
import { waitFor } from '@app/messaging/testing';
import { MessagingPublisher } from '@app/messaging';
import { createOrderApp } from '../../apps/order-service/src/order-service.app';
import { createPaymentApp } from '../../apps/payment-service/src/payment-service.app';
import { SimulatedPaymentGateway } from '../../apps/payment-service/src/payments/payment-gateway';

/** Both sample services started in this process on one broker, with unique service names. */
export interface SampleServices {
  readonly order: INestApplication;
  readonly payment: INestApplication;
  readonly orderService: string;
  readonly paymentService: string;
  /** payment-service's simulated gateway (charge counts, `repair`). */
  readonly gateway: SimulatedPaymentGateway;
  close(): Promise<void>;
}

/**
 * Starts order-service then payment-service, each on its own backend from `backend()`, with service
 * names `<prefix>-<random>-orders` and `-payments` (so every queue name carries `prefix`). With
 * `database`, their state is in PostgreSQL, in schemas `<schemaPrefix>_orders` and `_payments`.
 */
export async function startSampleServices(
  backend: () => BrokerBackend,
  prefix = 'e2e',
  database?: { url: string; schemaPrefix: string },
): Promise<SampleServices> {
  const run = randomUUID().slice(0, 4);
  const orderService = `${prefix}-${run}-orders`;
  const paymentService = `${prefix}-${run}-payments`;
  const schema = (name: string) =>
    database && { url: database.url, schema: `${database.schemaPrefix}_${name}` };
  const order = await createOrderApp({
    backend: backend(),
    service: orderService,
    database: schema('orders'),
    logger: false,
  });
  let payment: INestApplication;
  try {
    payment = await createPaymentApp({
      backend: backend(),
      service: paymentService,
      database: schema('payments'),
      logger: false,
    });
  } catch (error) {
    await order.close();
    throw error;
  }
  const gateway = payment.get(SimulatedPaymentGateway);
  return {
    order,
    payment,
    orderService,
    paymentService,
    gateway,
    async close() {
      await Promise.allSettled([payment.close(), order.close()]);
    },
  };
}

/** Places an order through `POST /orders` and returns its id. */
export async function placeOrder(
  order: INestApplication,
  cardToken: string,
  amount = 42,
): Promise<string> {
  const res = await request(order.getHttpServer())
    .post('/orders')
    .send({ customerId: `cust-${cardToken}`, amount, cardToken })
    .expect(201);
  expect(res.body).toMatchObject({ status: 'PENDING', cardToken, amount });
  return res.body.id as string;
}

/** Polls `GET /orders/:id` until its status is `status`; resolves with the order. */
export async function waitForStatus(
  order: INestApplication,
  id: string,
  status: string,
  timeoutMs = 10_000,
): Promise<Record<string, unknown>> {
  let last: Record<string, unknown> = {};
  await waitFor(
    async () => {
      last = (await request(order.getHttpServer()).get(`/orders/${id}`).expect(200)).body;
      return last.status === status;
    },
    {
      timeoutMs,
      intervalMs: 25,
      message: `order ${id} to become ${status} (last: ${JSON.stringify(last.status)})`,
    },
  );
  return last;
}

/** Publishes `order.created` again for an order, as a redelivery or a replay would. */
export async function republishOrderCreated(
  order: INestApplication,
  event: { orderId: string; customerId: string; amount: number; cardToken: string },
): Promise<void> {
  await order
    .get(MessagingPublisher)
    .publish({ topic: 'order.created' }, event, { correlationId: event.orderId });
}
