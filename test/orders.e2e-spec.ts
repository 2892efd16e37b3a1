import request from 'supertest';
import {
  DeadLetterService,
  InMemoryBackend,
  InMemoryBroker,
  MessagingPublisher,
} from '@app/messaging';
import { waitFor } from '@app/messaging/testing';
import { createOrderApp } from '../apps/order-service/src/order-service.app';
import { createPaymentApp } from '../apps/payment-service/src/payment-service.app';
import { describeCardTokenFlows } from './support/card-token-flows';
import {
  placeOrder,
  type SampleServices,
  startSampleServices,
  waitForStatus,
} from './support/sample-services';

/** order-service and payment-service through HTTP, on one in-memory broker (SPEC section 4). */
describe('order-service + payment-service (in-memory broker)', () => {
  let services: SampleServices;

  beforeAll(async () => {
    const broker = new InMemoryBroker();
    services = await startSampleServices(() => new InMemoryBackend({ broker }), 'mem');
  });

  afterAll(async () => {
    await services?.close();
  });

  const orderHttp = () => request(services.order.getHttpServer());
  const paymentHttp = () => request(services.payment.getHttpServer());

  describeCardTokenFlows(() => services);

  it('dead-letters a payment event for an unknown order or with a bad payload at once', async () => {
    const publisher = services.payment.get(MessagingPublisher);
    const deadLetters = services.order.get(DeadLetterService);
    await publisher.publish(
      { topic: 'payment.succeeded' },
      { orderId: 'no-such-order', paymentId: 'pay_x' },
    );
    await publisher.publish({ topic: 'payment.failed' }, { reason: 'no order id' });
    await waitFor(async () => (await deadLetters.list()).length === 2, {
      message: 'two dead letters in order-service',
    });
    const letters = await deadLetters.list();
    expect(letters.map((l) => [l.topic, l.reason, l.attempts])).toEqual(
      expect.arrayContaining([
        ['payment.succeeded', 'unrecoverable', 1],
        ['payment.failed', 'validation', 1],
      ]),
    );
    expect(letters.find((l) => l.reason === 'unrecoverable')?.error).toMatch(
      /order no-such-order does not exist/,
    );
    await deadLetters.purge();
  });

  it.each([
    ['a missing field', { customerId: 'c1', amount: 10 }, /cardToken/],
    [
      'a negative amount',
      { customerId: 'c1', amount: -5, cardToken: 'tok_ok' },
      /amount must be a positive number/,
    ],
    [
      'a zero amount',
      { customerId: 'c1', amount: 0, cardToken: 'tok_ok' },
      /amount must be a positive number/,
    ],
    [
      'an amount as text',
      { customerId: 'c1', amount: '10', cardToken: 'tok_ok' },
      /amount must be a number/,
    ],
    [
      'an unknown field',
      { customerId: 'c1', amount: 10, cardToken: 'tok_ok', admin: true },
      /property admin should not exist/,
    ],
    [
      'an empty customerId',
      { customerId: '', amount: 10, cardToken: 'tok_ok' },
      /customerId should not be empty/,
    ],
  ])('answers 400 with a clear message on %s', async (_case, body, message) => {
    const res = await orderHttp().post('/orders').send(body).expect(400);
    expect(res.body.message.join('; ')).toMatch(message);
  });

  it('answers 400 on a body that is not JSON', async () => {
    await orderHttp()
      .post('/orders')
      .set('content-type', 'application/json')
      .send('{"customerId":')
      .expect(400);
  });

  it('answers 404 for an unknown order', async () => {
    const res = await orderHttp().get('/orders/does-not-exist').expect(404);
    expect(res.body.message).toMatch(/does-not-exist not found/);
  });

  it('reports the broker as up on GET /health (terminus)', async () => {
    const res = await paymentHttp().get('/health').expect(200);
    expect(res.body).toMatchObject({
      status: 'ok',
      info: { messaging: { status: 'up', backend: 'memory', connection: 'connected' } },
    });
    await orderHttp().get('/health').expect(200);
  });

  it('counts the messages of an order on GET /metrics (Prometheus)', async () => {
    const id = await placeOrder(services.order, 'tok_ok');
    await waitForStatus(services.order, id, 'PAID');
    const text = (
      await paymentHttp()
        .get('/metrics')
        .expect(200)
        .expect('Content-Type', /text\/plain/)
    ).text;
    expect(text).toMatch(
      /messaging_consumed_total\{handler="OrderCreatedConsumer.onOrderCreated",topic="order.created",outcome="ack"\} [1-9]/,
    );
    expect(text).toMatch(/messaging_publish_confirmed_total\{topic="payment.succeeded"\} [1-9]/);
    expect(text).toMatch(
      /messaging_handler_duration_seconds_count\{handler="OrderCreatedConsumer.onOrderCreated",outcome="ack"\} [1-9]/,
    );
    expect(text).toMatch(/messaging_in_flight\{handler="OrderCreatedConsumer.onOrderCreated"\} 0/);
  });

  it('refuses an order with 503, and keeps nothing, while nobody consumes order.created', async () => {
    const lonely = await createOrderApp({
      backend: new InMemoryBackend({ broker: new InMemoryBroker() }),
      logger: false,
    });
    try {
      const res = await request(lonely.getHttpServer())
        .post('/orders')
        .send({ customerId: 'c1', amount: 10, cardToken: 'tok_ok' })
        .expect(503);
      expect(res.body.message).toMatch(/no service consumes 'order.created'.*not kept/);
      await request(lonely.getHttpServer()).get('/orders').expect(200, []);
    } finally {
      await lonely.close();
    }
  });

  it('reports 503 on GET /health once the broker connection is gone', async () => {
    const broker = new InMemoryBroker();
    const backend = new InMemoryBackend({ broker });
    const app = await createPaymentApp({ backend, logger: false });
    try {
      await backend.close();
      const res = await request(app.getHttpServer()).get('/health').expect(503);
      expect(res.body).toMatchObject({
        status: 'error',
        error: { messaging: { status: 'down', backend: 'memory', connection: 'closed' } },
      });
    } finally {
      await app.close();
    }
  });
});
