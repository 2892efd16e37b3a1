import request from 'supertest';
import { waitFor } from '@app/messaging/testing';
import {
  placeOrder,
  republishOrderCreated,
  type SampleServices,
  waitForStatus,
} from './sample-services';

/**
 * The four card-token flows of SPEC section 4 plus idempotency, through both services' HTTP APIs.
 * Each spec calls it with its running services, whatever the broker.
 */
export function describeCardTokenFlows(services: () => SampleServices): void {
  const orderHttp = () => request(services().order.getHttpServer());
  const paymentHttp = () => request(services().payment.getHttpServer());

  it('tok_ok: PENDING then PAID, charged once', async () => {
    const id = await placeOrder(services().order, 'tok_ok');
    const order = await waitForStatus(services().order, id, 'PAID');
    expect(order).toMatchObject({ id, customerId: 'cust-tok_ok', amount: 42, cardToken: 'tok_ok' });
    expect(order.paymentId).toEqual(expect.stringMatching(/^pay_/));
    const payment = await paymentHttp().get(`/payments/${id}`).expect(200);
    expect(payment.body).toMatchObject({
      charges: 1,
      deliveries: 1,
      record: { outcome: 'succeeded' },
    });
    const charges = await paymentHttp().get('/payments').query({ orderId: id }).expect(200);
    expect(charges.body).toEqual([{ orderId: id, paymentId: order.paymentId, amount: 42 }]);
  });

  it('tok_flaky: fails twice, then PAID after retries', async () => {
    const id = await placeOrder(services().order, 'tok_flaky');
    await waitForStatus(services().order, id, 'PAID');
    const payment = await paymentHttp().get(`/payments/${id}`).expect(200);
    expect(payment.body).toMatchObject({ charges: 1, deliveries: 3 });
  });

  it('tok_declined: PAYMENT_FAILED at once, without retries', async () => {
    const id = await placeOrder(services().order, 'tok_declined');
    const order = await waitForStatus(services().order, id, 'PAYMENT_FAILED');
    expect(order.failureReason).toMatch(/declined/);
    const payment = await paymentHttp().get(`/payments/${id}`).expect(200);
    expect(payment.body).toMatchObject({
      charges: 0,
      deliveries: 1,
      record: { outcome: 'failed' },
    });
    await paymentHttp().get('/payments').query({ orderId: id }).expect(200, []);
  });

  it('tok_broken: retried to the limit, dead-lettered (order stays PENDING), then replayed once fixed', async () => {
    const id = await placeOrder(services().order, 'tok_broken');
    let letter: Record<string, any> | undefined;
    await waitFor(
      async () => {
        const res = await paymentHttp().get('/dead-letters').expect(200);
        letter = (res.body as Array<Record<string, any>>).find((l) => l.payload?.orderId === id);
        return letter !== undefined;
      },
      { message: `a dead letter for order ${id}` },
    );
    expect(letter).toMatchObject({
      topic: 'order.created',
      attempts: 4,
      reason: 'max-attempts',
      error: expect.stringContaining('gateway error'),
      payload: { orderId: id, cardToken: 'tok_broken' },
    });
    expect(letter).not.toHaveProperty('body');
    expect((await orderHttp().get(`/orders/${id}`).expect(200)).body.status).toBe('PENDING');
    expect(await services().gateway.chargeCount(id)).toBe(0);

    await paymentHttp().post('/dead-letters/no-such-letter/replay').expect(404);

    services().gateway.repair('tok_broken');
    await paymentHttp()
      .post(`/dead-letters/${letter!.id}/replay`)
      .expect(200, { id: letter!.id, replayed: true });
    await waitForStatus(services().order, id, 'PAID');
    expect(await services().gateway.chargeCount(id)).toBe(1);
    const left = await paymentHttp().get('/dead-letters').expect(200);
    expect(left.body.find((l: { id: string }) => l.id === letter!.id)).toBeUndefined();
  });

  it('a redelivered order.created re-publishes the outcome but never charges twice', async () => {
    const id = await placeOrder(services().order, 'tok_ok', 17);
    await waitForStatus(services().order, id, 'PAID');
    const before = (await orderHttp().get(`/orders/${id}`).expect(200)).body;

    await republishOrderCreated(services().order, {
      orderId: id,
      customerId: 'cust-tok_ok',
      amount: 17,
      cardToken: 'tok_ok',
    });
    await waitFor(async () => (await paymentHttp().get(`/payments/${id}`)).body.deliveries === 2, {
      message: 'the second delivery to be handled',
    });
    expect(await services().gateway.chargeCount(id)).toBe(1);
    const after = (await orderHttp().get(`/orders/${id}`).expect(200)).body;
    expect(after).toEqual(before);
  });
}
