/**
 * The delivery count a runner goes by when the server counts a message from 1 again (nats-server 2.9
 * after delivering it into a pull whose inbox was gone): a message handed back past `deliveryLimit`
 * must not reach its handler again.
 */
import { Logger } from '@nestjs/common';
import type { Msg } from '@nats-io/transport-node';
import type { Delivery, Settlement } from '../../backend/broker-backend.interface';
import { BackendEventHub } from '../../backend/backend-events';
import { resolveNatsOptions } from './nats-backend.options';
import { NatsDeliveryRunner } from './nats-delivery-runner';
import { PulledMessage } from './nats-pulled-message';
import type { NatsSettler, NatsSettlerContext } from './nats-settler';
import { natsNames } from './nats-topology';

const names = natsNames('p');
const spec = { service: 'svc', queue: 'svc.route', topics: ['t'], external: false, concurrency: 1 };

/** A delivery of stream sequence `seq` that the server counts as its `count`th, and what was sent back. */
function pulled(seq: number, count: number, consumerSeq: number, answers: string[]): PulledMessage {
  const msg = {
    subject: `${names.topicPrefix}t`,
    reply: `$JS.ACK.p-messages.c.${count}.${seq}.${consumerSeq}.${Date.now() * 1e6}.0`,
    data: new Uint8Array(Buffer.from('{}')),
    headers: undefined,
    respond: (data: Uint8Array) => answers.push(Buffer.from(data).toString().split(' ')[0]),
  } as unknown as Msg;
  return new PulledMessage(msg);
}

function runner(handler: (d: Delivery) => Promise<Settlement>) {
  const deadLetters: Delivery[] = [];
  const ctx = {
    options: resolveNatsOptions({ deliveryLimit: 1 }),
    names,
    hub: new BackendEventHub(),
    logger: new Logger('test'),
    link: () => Promise.reject(new Error('not used')),
    current: () => undefined,
    publish: () => Promise.resolve(),
  } as NatsSettlerContext;
  ctx.hub.on('error', () => undefined);
  const settler = {
    trustedReplyTo: (d: Delivery) => d,
    publishDeadLetter: (d: Delivery) => {
      deadLetters.push(d);
      return Promise.resolve();
    },
  } as unknown as NatsSettler;
  return { run: new NatsDeliveryRunner(spec, handler, ctx, settler), deadLetters };
}

describe('NatsDeliveryRunner', () => {
  it('counts on from what it saw when the server counts a handed-back message from 1 again', async () => {
    const answers: string[] = [];
    let calls = 0;
    const { run, deadLetters } = runner(() => {
      calls++;
      return Promise.reject(new Error('crash'));
    });
    await run.run(pulled(7, 1, 1, answers)); // handler throws: handed back
    expect(answers).toEqual(['-NAK']);
    // The server lost count: delivery 2 comes as a first one, on a new consumer sequence.
    const again = pulled(7, 1, 2, answers);
    await run.run(again);
    expect(calls).toBe(1);
    expect(deadLetters).toHaveLength(1);
    expect(deadLetters[0].redelivered).toBe(true);
    expect(again.redelivered).toBe(true);
  });

  it('goes by the server count for every other message', async () => {
    const answers: string[] = [];
    const seen: Delivery[] = [];
    const { run, deadLetters } = runner((d) => {
      seen.push(d);
      return Promise.resolve({ action: 'ack' });
    });
    await run.run(pulled(8, 1, 3, answers));
    await run.run(pulled(9, 1, 4, answers));
    expect(seen.map((d) => d.redelivered)).toEqual([false, false]);
    expect(deadLetters).toEqual([]);
    run.flushAcks();
    expect(answers).toEqual(['+ACK', '+ACK']);
  });
});
