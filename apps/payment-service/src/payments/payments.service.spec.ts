import { Logger } from '@nestjs/common';
import type { MessageProducer } from '@app/messaging';
import type { OrderToCharge, PaymentFailedEvent, PaymentSucceededEvent } from './payment';
import { GatewayUnavailableError, SimulatedPaymentGateway } from './payment-gateway';
import { InMemoryPaymentLedger } from './payment-ledger';
import { PaymentsService } from './payments.service';

function producer<T>(): MessageProducer<T> & { published: T[] } {
  const published: T[] = [];
  return {
    published,
    publish: async (event: T) => {
      published.push(event);
      return 'message-id';
    },
  } as unknown as MessageProducer<T> & { published: T[] };
}

const order = (cardToken: string, orderId = `o-${cardToken}`): OrderToCharge => ({
  orderId,
  customerId: 'c1',
  amount: 10,
  cardToken,
});

describe('PaymentsService', () => {
  beforeAll(() => Logger.overrideLogger(false));

  const build = () => {
    const gateway = new SimulatedPaymentGateway();
    const succeeded = producer<PaymentSucceededEvent>();
    const failed = producer<PaymentFailedEvent>();
    const service = new PaymentsService(gateway, new InMemoryPaymentLedger(), succeeded, failed);
    return { gateway, succeeded, failed, service };
  };

  it('charges tok_ok once and publishes payment.succeeded', async () => {
    const { gateway, succeeded, service } = build();
    await service.process(order('tok_ok'), { attempt: 1 });
    expect(await gateway.chargeCount('o-tok_ok')).toBe(1);
    expect(succeeded.published).toEqual([
      expect.objectContaining({ orderId: 'o-tok_ok', paymentId: expect.stringMatching(/^pay_/) }),
    ]);
  });

  it('throws a transient error for tok_flaky on attempts 1 and 2, then charges on attempt 3', async () => {
    const { gateway, service } = build();
    await expect(service.process(order('tok_flaky'), { attempt: 1 })).rejects.toBeInstanceOf(
      GatewayUnavailableError,
    );
    await expect(service.process(order('tok_flaky'), { attempt: 2 })).rejects.toBeInstanceOf(
      GatewayUnavailableError,
    );
    await service.process(order('tok_flaky'), { attempt: 3 });
    expect(await gateway.chargeCount('o-tok_flaky')).toBe(1);
  });

  it('publishes payment.failed for tok_declined without throwing', async () => {
    const { failed, service } = build();
    await service.process(order('tok_declined'), { attempt: 1 });
    expect(failed.published).toEqual([
      { orderId: 'o-tok_declined', reason: expect.stringMatching(/declined/) },
    ]);
  });

  it('never charges an order twice, even for deliveries that arrive at the same time; the outcome is re-published', async () => {
    const { gateway, succeeded, service } = build();
    await Promise.all([1, 2, 3].map(() => service.process(order('tok_ok'), { attempt: 1 })));
    await service.process(order('tok_ok'), { attempt: 1 });
    expect(await gateway.chargeCount('o-tok_ok')).toBe(1);
    expect(succeeded.published).toHaveLength(4);
    expect(new Set(succeeded.published.map((e) => e.paymentId)).size).toBe(1);
    expect(await service.view('o-tok_ok')).toMatchObject({ charges: 1, deliveries: 4 });
  });

  it('keeps failing tok_broken until the gateway is repaired', async () => {
    const { gateway, service } = build();
    await expect(service.process(order('tok_broken'), { attempt: 9 })).rejects.toThrow(
      /gateway error/,
    );
    gateway.repair('tok_broken');
    await service.process(order('tok_broken'), { attempt: 1 });
    expect(await gateway.chargeCount('o-tok_broken')).toBe(1);
  });
});
