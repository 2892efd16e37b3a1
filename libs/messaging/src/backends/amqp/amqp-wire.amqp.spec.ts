import * as amqplib from 'amqplib';
import { BROKER_URL } from '../../testing/rabbitmq.fixture';
import { coalesceWrites } from './amqp-wire';

describe('coalesceWrites on the amqplib in use', () => {
  it('finds the socket and multiplexer it corks, and messages still flow', async () => {
    const conn = await amqplib.connect(BROKER_URL);
    try {
      // False here means an amqplib upgrade changed its insides: writes are no longer coalesced.
      expect(coalesceWrites(conn)).toBe(true);
      const ch = await conn.createChannel();
      const { queue } = await ch.assertQueue('', { exclusive: true });
      for (let i = 0; i < 50; i++) ch.sendToQueue(queue, Buffer.from(String(i)));
      const got: string[] = [];
      await new Promise<void>((resolve) => {
        void ch.consume(queue, (msg) => {
          if (msg) got.push(msg.content.toString());
          if (got.length === 50) resolve();
        });
      });
      expect(got).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
    } finally {
      await conn.close();
    }
  });
});
