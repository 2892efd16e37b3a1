import { DeadLetterService } from '@app/messaging';
import { MessagingTestKit } from '@app/messaging/testing';
import { PAYMENT_SERVICE_NAME, PaymentServiceModule } from '../payment-service.module';
import type { OrderToCharge, PaymentFailedEvent, PaymentSucceededEvent } from './payment';
import { SimulatedPaymentGateway } from './payment-gateway';
import { PaymentsService } from './payments.service';

const order = (cardToken: string): OrderToCharge => ({
  orderId: `o-${cardToken}`,
  customerId: 'c1',
  amount: 42,
  cardToken,
});

/**
 * payment-service's `order.created` consumer, the whole module booted on the test kit: each card
 * token of SPEC section 4 from the message in to the events out, retries and dead letters included,
 * on a manual clock (PAYMENT_SERVICE_RETRY's backoff takes no real time).
 */
describe('OrderCreatedConsumer (payment-service on MessagingTestKit)', () => {
  let kit: MessagingTestKit;

  beforeEach(async () => {
    kit = await MessagingTestKit.create(
      ({ backend }) => ({ imports: [PaymentServiceModule.register({ backend })] }),
      { clock: 'manual' },
    );
    // order-service is not started: a stub stands for its queues, so payment events are routable.
    kit.stubConsumer('payment.*');
  });

  afterEach(() => kit.close());

  const gateway = () => kit.get(SimulatedPaymentGateway);
  const succeeded = () => kit.publishedTo<PaymentSucceededEvent>('payment.succeeded');
  const failed = () => kit.publishedTo<PaymentFailedEvent>('payment.failed');

  it('tok_ok: charges once and publishes payment.succeeded', async () => {
    await kit.publish('order.created', order('tok_ok'));
    await kit.settled();
    expect(succeeded().map((m) => m.payload)).toEqual([
      { orderId: 'o-tok_ok', paymentId: expect.stringMatching(/^pay_/), amount: 42 },
    ]);
    expect(await gateway().chargeCount('o-tok_ok')).toBe(1);
    expect(kit.service).toBe(PAYMENT_SERVICE_NAME);
  });

  it('tok_flaky: fails twice, is retried after the backoff, then charged once', async () => {
    await kit.publish('order.created', order('tok_flaky'));
    await kit.settled();
    expect(succeeded()).toEqual([]);
    expect(kit.clock.pendingDelays).toBe(1); // the retry, waiting for the clock

    await kit.clock.runAllDelays();
    expect(succeeded().map((m) => m.payload.orderId)).toEqual(['o-tok_flaky']);
    expect(await kit.get(PaymentsService).view('o-tok_flaky')).toMatchObject({
      charges: 1,
      deliveries: 3,
    });
    expect(await kit.deadLetters()).toEqual([]);
  });

  it('tok_declined: publishes payment.failed at once, without retries or a charge', async () => {
    await kit.publish('order.created', order('tok_declined'));
    await kit.settled();
    expect(failed().map((m) => m.payload)).toEqual([
      { orderId: 'o-tok_declined', reason: expect.stringMatching(/declined/) },
    ]);
    expect(kit.clock.pendingDelays).toBe(0);
    expect(await gateway().chargeCount('o-tok_declined')).toBe(0);
  });

  it('tok_broken: retried to the limit, then dead-lettered; replayed once the gateway is fixed', async () => {
    await kit.publish('order.created', order('tok_broken'));
    await kit.clock.runAllDelays();
    // PAYMENT_SERVICE_RETRY: 4 attempts, 200 + 400 + 800 ms of backoff plus up to 10% jitter.
    expect(kit.clock.now).toBeGreaterThanOrEqual(1_400);
    expect(kit.clock.now).toBeLessThanOrEqual(1_540);
    const letters = await kit.deadLetters();
    expect(letters).toEqual([
      expect.objectContaining({
        topic: 'order.created',
        reason: 'max-attempts',
        attempts: 4,
        error: expect.stringContaining('gateway error'),
        payload: order('tok_broken'),
      }),
    ]);
    expect(kit.publishedTo('payment.*')).toEqual([]);
    expect(await gateway().chargeCount('o-tok_broken')).toBe(0);

    gateway().repair('tok_broken');
    expect(await kit.get(DeadLetterService).replay(letters[0].id)).toBe(true);
    await kit.settled();
    expect(succeeded().map((m) => m.payload.orderId)).toEqual(['o-tok_broken']);
    expect(await kit.deadLetters()).toEqual([]);
  });
});
