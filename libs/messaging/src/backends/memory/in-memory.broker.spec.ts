/** What the in-memory broker adds to the contract suite: flow control and yielding to the event loop. */
import type { OutgoingMessage, Settlement } from '../../backend/broker-backend.interface';
import { gate, waitFor } from '../../testing/wait-for';
import { InMemoryBroker, type MemoryConsumer } from './in-memory.broker';

const ACK: Settlement = { action: 'ack' };

function message(i: number): OutgoingMessage {
  return {
    topic: 'fc.t',
    body: Buffer.from(String(i)),
    headers: {},
    messageId: `m${i}`,
    timestamp: 0,
  };
}

function consumer(handler: MemoryConsumer['handler'], concurrency: number): MemoryConsumer {
  return { service: 's', handler, concurrency, inFlight: 0, active: true, unsettled: new Set() };
}

describe('InMemoryBroker', () => {
  it('holds publishers of a backlogged queue until its consumers drain it', async () => {
    const broker = new InMemoryBroker();
    const release = gate();
    let handled = 0;
    broker.declareQueue('s.q', ['fc.t']);
    broker.addConsumer(
      's.q',
      consumer(async () => {
        await release.promise;
        handled++;
        return ACK;
      }, 10),
    );
    for (let i = 0; i < 1_000; i++) broker.route(message(i));
    expect(broker.backpressure(message(0))).toBeUndefined(); // at the high-water mark, not over
    for (let i = 1_000; i < 1_031; i++) broker.route(message(i));
    const held = broker.backpressure(message(0));
    expect(held).toBeInstanceOf(Promise);
    let handledWhenResumed = -1;
    void held?.then(() => (handledWhenResumed = handled));
    release.open();
    await waitFor(() => handled === 1_031);
    // Resumed once the queue was down to half (500 ready), well before it was empty.
    expect(handledWhenResumed).toBeGreaterThan(500);
    expect(handledWhenResumed).toBeLessThan(600);
  });

  it('never holds a publisher longer than one turn when the consumers take nothing', async () => {
    const broker = new InMemoryBroker();
    const stuck = gate();
    broker.declareQueue('s.q', ['fc.t']);
    broker.addConsumer(
      's.q',
      consumer(() => stuck.promise.then(() => ACK), 1),
    );
    for (let i = 0; i < 1_100; i++) broker.route(message(i));
    await new Promise((resolve) => setImmediate(resolve));
    const held = broker.backpressure(message(0));
    expect(held).toBeInstanceOf(Promise);
    await held; // a handler publishing to its own stuck queue would otherwise deadlock
    stuck.open();
  });

  it('lets timers run during a long burst of deliveries', async () => {
    const broker = new InMemoryBroker();
    let handled = 0;
    let handledWhenTimerRan = -1;
    broker.declareQueue('s.q', ['fc.t']);
    broker.addConsumer(
      's.q',
      consumer(async () => {
        const until = performance.now() + 0.05; // a handler that takes a little CPU
        while (performance.now() < until);
        handled++;
        return ACK;
      }, 100),
    );
    for (let i = 0; i < 5_000; i++) broker.route(message(i));
    setTimeout(() => (handledWhenTimerRan = handled), 0);
    await waitFor(() => handled === 5_000);
    // The timer did not wait for the whole burst (about 250 ms of handler time).
    expect(handledWhenTimerRan).toBeGreaterThanOrEqual(0);
    expect(handledWhenTimerRan).toBeLessThan(5_000);
  });
});
