import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { InMemoryBackend } from '@app/messaging';
import { MessagingTestKit } from '@app/messaging/testing';
import { OrderServiceModule } from '../apps/order-service/src/order-service.module';
import { createPaymentApp } from '../apps/payment-service/src/payment-service.app';
import { PAYMENT_SERVICE_NAME } from '../apps/payment-service/src/payment-service.module';
import { SimulatedPaymentGateway } from '../apps/payment-service/src/payments/payment-gateway';

/**
 * The four card tokens of SPEC section 4 through both services, on the test kit: order-service is
 * the kit's app, payment-service a second app on the kit's broker, so `settled()` and the manual
 * clock cover both. No sleeps, no polling: each order is final (or dead-lettered) once they return.
 */
describe('card tokens end to end on MessagingTestKit (order-service + payment-service)', () => {
  let kit: MessagingTestKit;
  let payment: INestApplication;

  beforeEach(async () => {
    kit = await MessagingTestKit.create(
      ({ backend }) => ({ imports: [OrderServiceModule.register({ backend })] }),
      { clock: 'manual' },
    );
    payment = await createPaymentApp({
      backend: new InMemoryBackend({ broker: kit.broker }),
      logger: false,
    });
  });

  afterEach(async () => {
    await payment.close();
    await kit.close();
  });

  async function placeOrder(cardToken: string): Promise<string> {
    const res = await request(kit.app.getHttpServer())
      .post('/orders')
      .send({ customerId: 'c1', amount: 42, cardToken })
      .expect(201);
    return res.body.id as string;
  }

  const statusOf = async (id: string) =>
    (await request(kit.app.getHttpServer()).get(`/orders/${id}`).expect(200)).body.status;
  const chargesOf = (id: string) => payment.get(SimulatedPaymentGateway).chargeCount(id);

  it('tok_ok: PAID, charged once', async () => {
    const id = await placeOrder('tok_ok');
    await kit.settled();
    expect(await statusOf(id)).toBe('PAID');
    expect(await chargesOf(id)).toBe(1);
  });

  it('tok_flaky: PAID after two retries', async () => {
    const id = await placeOrder('tok_flaky');
    await kit.settled();
    expect(await statusOf(id)).toBe('PENDING'); // the first retry waits for the clock
    await kit.clock.runAllDelays();
    expect(await statusOf(id)).toBe('PAID');
    expect(await chargesOf(id)).toBe(1);
  });

  it('tok_declined: PAYMENT_FAILED at once', async () => {
    const id = await placeOrder('tok_declined');
    await kit.settled();
    expect(await statusOf(id)).toBe('PAYMENT_FAILED');
    expect(kit.clock.pendingDelays).toBe(0);
  });

  it('tok_broken: dead-lettered in payment-service after its retries, the order stays PENDING', async () => {
    const id = await placeOrder('tok_broken');
    await kit.clock.runAllDelays();
    expect(await statusOf(id)).toBe('PENDING');
    expect(await kit.deadLetters(PAYMENT_SERVICE_NAME)).toEqual([
      expect.objectContaining({
        reason: 'max-attempts',
        attempts: 4,
        payload: expect.objectContaining({ orderId: id }),
      }),
    ]);
    expect(await chargesOf(id)).toBe(0);
  });
});
