import { decideDeliveryLimit } from './delivery-limit';

const now = new Date('2026-01-01T00:00:00Z');

describe('decideDeliveryLimit', () => {
  it.each`
    deliveries | limit | verdict
    ${1}       | ${1}  | ${'handle'}
    ${2}       | ${1}  | ${'dead-letter'}
    ${1}       | ${20} | ${'handle'}
    ${20}      | ${20} | ${'handle'}
    ${21}      | ${20} | ${'dead-letter'}
    ${500}     | ${20} | ${'dead-letter'}
  `(
    'delivery $deliveries with deliveryLimit $limit: $verdict',
    ({ deliveries, limit, verdict }) => {
      const settlement = decideDeliveryLimit({ deliveries, limit, now });
      expect(settlement?.action ?? 'handle').toBe(verdict);
    },
  );

  it('dead-letters with reason delivery-limit, error class DeliveryLimitExceeded and the count', () => {
    expect(decideDeliveryLimit({ deliveries: 4, limit: 3, now })).toEqual({
      action: 'dead-letter',
      failure: {
        reason: 'delivery-limit',
        message: expect.stringContaining(
          'delivered 4 times without being settled (deliveryLimit 3)',
        ),
        errorClass: 'DeliveryLimitExceeded',
        at: now,
      },
    });
  });
});
