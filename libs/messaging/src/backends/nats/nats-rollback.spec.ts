import type { Msg } from '@nats-io/transport-node';
import { PulledMessage } from './nats-pulled-message';
import { DeliveryHighWater } from './nats-rollback';

describe('DeliveryHighWater', () => {
  it.each([
    ['a new delivery, above all received', [[10, 10]], [11, 11], false],
    ['a redelivery after the ack wait (new consumer seq)', [[10, 10]], [7, 11], false],
    ['another instance took some: still above', [[10, 10]], [14, 14], false],
    [
      'the state went back: delivered again below',
      [
        [10, 10],
        [11, 11],
        [12, 12],
      ],
      [11, 11],
      true,
    ],
    ['the state went back, a message published since', [[10, 10]], [11, 9], false],
    ['a consumer made again (deliver new): new messages', [[10, 10]], [40, 1], false],
  ])('reads %s', (_, before, [streamSeq, consumerSeq], rolledBack) => {
    const marks = new DeliveryHighWater();
    for (const [s, c] of before) expect(marks.rolledBack(s, c)).toBe(false);
    expect(marks.rolledBack(streamSeq, consumerSeq)).toBe(rolledBack);
  });

  it('marks a rolled-back delivery redelivered though its delivery count is 1', () => {
    const pulled = new PulledMessage({
      reply: `$JS.ACK.s-messages.r-c.1.42.7.1700000000123000000.5`,
    } as unknown as Msg);
    expect([pulled.seq, pulled.consumerSeq, pulled.deliveryCount]).toEqual([42, 7, 1]);
    expect(pulled.redelivered).toBe(false);
    pulled.rolledBack = true;
    expect(pulled.redelivered).toBe(true);
  });
});
