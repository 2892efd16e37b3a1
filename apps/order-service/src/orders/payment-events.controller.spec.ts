import { MessagingTestKit } from '@app/messaging/testing';
import { OrderServiceModule } from '../order-service.module';
import type { OrderCreatedEvent } from './order';
import { OrdersService } from './orders.service';

const DTO = { customerId: 'c1', amount: 42, cardToken: 'tok_ok' };

/**
 * order-service booted on the test kit, payment-service stubbed: an order placed goes out as
 * `order.created`, and payment events move it to its final status (or to the dead letters).
 */
describe('PaymentEventsController (order-service on MessagingTestKit)', () => {
  let kit: MessagingTestKit;

  beforeEach(async () => {
    kit = await MessagingTestKit.create(
      ({ backend }) => ({ imports: [OrderServiceModule.register({ backend })] }),
      { clock: 'manual' },
    );
    // payment-service is not started: a stub consumes order.created in its place.
    kit.stubConsumer('order.created');
  });

  afterEach(() => kit.close());

  const orders = () => kit.get(OrdersService);

  it('keeps a new order PENDING and publishes order.created, correlated by the order id', async () => {
    const order = await orders().place(DTO);
    await kit.settled();
    expect(order.status).toBe('PENDING');
    expect(kit.publishedTo<OrderCreatedEvent>('order.created')).toEqual([
      expect.objectContaining({ payload: { orderId: order.id, ...DTO }, correlationId: order.id }),
    ]);
  });

  it('payment.succeeded: PENDING -> PAID, and the same event again changes nothing', async () => {
    const order = await orders().place(DTO);
    const event = { orderId: order.id, paymentId: 'pay_1', amount: 42 };
    await kit.publish('payment.succeeded', event);
    await kit.publish('payment.succeeded', event);
    await kit.settled();
    expect(await orders().get(order.id)).toMatchObject({ status: 'PAID', paymentId: 'pay_1' });
    expect(await kit.deadLetters()).toEqual([]);
  });

  it('payment.failed: PENDING -> PAYMENT_FAILED with the reason', async () => {
    const order = await orders().place(DTO);
    await kit.publish('payment.failed', { orderId: order.id, reason: 'card declined' });
    await kit.settled();
    expect(await orders().get(order.id)).toMatchObject({
      status: 'PAYMENT_FAILED',
      failureReason: 'card declined',
    });
  });

  it('dead-letters an event for an unknown order and an invalid one at once, without retries', async () => {
    await kit.publish('payment.succeeded', { orderId: 'no-such-order', paymentId: 'pay_x' });
    await kit.publish('payment.failed', { reason: 'no order id' });
    await kit.settled();
    expect(kit.clock.pendingDelays).toBe(0);
    const letters = await kit.deadLetters();
    expect(letters.map((l) => [l.topic, l.reason, l.attempts])).toEqual(
      expect.arrayContaining([
        ['payment.succeeded', 'unrecoverable', 1],
        ['payment.failed', 'validation', 1],
      ]),
    );
    expect(letters).toHaveLength(2);
    expect(letters.find((l) => l.reason === 'unrecoverable')?.error).toMatch(
      /order no-such-order does not exist/,
    );
  });
});
