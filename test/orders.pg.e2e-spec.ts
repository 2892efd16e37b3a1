import request from 'supertest';
import { InMemoryBackend, InMemoryBroker } from '@app/messaging';
import { createOrderApp } from '../apps/order-service/src/order-service.app';
import { createPaymentApp } from '../apps/payment-service/src/payment-service.app';
import { SimulatedPaymentGateway } from '../apps/payment-service/src/payments/payment-gateway';
import { MessagingPublisher } from '@app/messaging';
import { waitFor } from '../libs/messaging/src/testing/wait-for';
import {
  dropSchema,
  sqlOnTestDatabase,
  TEST_DATABASE_URL,
  uniqueSchema,
} from '../libs/messaging/src/testing/postgres.fixture';
import { describeCardTokenFlows } from './support/card-token-flows';
import {
  placeOrder,
  type SampleServices,
  startSampleServices,
  waitForStatus,
} from './support/sample-services';

/**
 * order-service and payment-service with `DATABASE_URL` (SPEC section 4): the same flows with their
 * state in PostgreSQL, events through the outbox and the inbox, on the in-memory broker.
 */
describe('order-service + payment-service on PostgreSQL (in-memory broker)', () => {
  const schemaPrefix = uniqueSchema('nm_e2e');
  const broker = new InMemoryBroker();
  let services: SampleServices;

  beforeAll(async () => {
    services = await startSampleServices(() => new InMemoryBackend({ broker }), 'pg', {
      url: TEST_DATABASE_URL,
      schemaPrefix,
    });
  });

  afterAll(async () => {
    await services?.close();
    await dropSchema(`${schemaPrefix}_orders`);
    await dropSchema(`${schemaPrefix}_payments`);
  });

  describeCardTokenFlows(() => services);

  it('keeps orders across an order-service restart', async () => {
    const id = await placeOrder(services.order, 'tok_ok');
    const paid = await waitForStatus(services.order, id, 'PAID');
    const again = await createOrderApp({
      backend: new InMemoryBackend({ broker }),
      service: `${services.orderService}-again`,
      database: { url: TEST_DATABASE_URL, schema: `${schemaPrefix}_orders` },
      logger: false,
    });
    try {
      await request(again.getHttpServer()).get(`/orders/${id}`).expect(200, paid);
    } finally {
      await again.close();
    }
  });

  it('charges an order once when two messages for it (two message ids) arrive together', async () => {
    // The inbox drops a message id seen before, not a second message for the same order: the
    // ledger's lock on the order, held until the handler's transaction commits, makes the second
    // one find the first one's outcome instead of charging with its own idempotency key.
    const schema = `${schemaPrefix}_twice`;
    const payment = await createPaymentApp({
      backend: new InMemoryBackend({ broker: new InMemoryBroker() }),
      service: `${services.paymentService}-twice`,
      database: { url: TEST_DATABASE_URL, schema },
      gatewayLatencyMs: 100,
      logger: false,
    });
    try {
      const orderId = `twice-${Date.now()}`;
      const event = { orderId, customerId: 'cust-twice', amount: 42, cardToken: 'tok_ok' };
      const ids = [`${orderId}-a`, `${orderId}-b`];
      const publisher = payment.get(MessagingPublisher);
      await Promise.all(
        ids.map((messageId) => publisher.publish({ topic: 'order.created' }, event, { messageId })),
      );
      await waitFor(
        async () => {
          const [row] = await sqlOnTestDatabase(
            `SELECT count(*)::int AS handled FROM "${schema}".messaging_inbox WHERE message_id = ANY($1)`,
            [ids],
          );
          return row?.handled === 2;
        },
        { message: 'both messages handled and committed' },
      );
      expect(await payment.get(SimulatedPaymentGateway).chargeCount(orderId)).toBe(1);
    } finally {
      await payment.close();
      await dropSchema(schema);
    }
  });
});
