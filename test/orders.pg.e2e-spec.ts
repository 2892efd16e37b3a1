import request from 'supertest';
import { InMemoryBackend, InMemoryBroker } from '@app/messaging';
import { createOrderApp } from '../apps/order-service/src/order-service.app';
import {
  dropSchema,
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
});
