/**
 * What the in-memory broker adds to the contract suite: flow control, yielding to the event loop, its
 * delay scheduler and telling when it is idle.
 */
import type { OutgoingMessage, Settlement } from '../../backend/broker-backend.interface';
import { TestClock } from '../../testing/test-clock';
import { gate, waitFor } from '../../testing/wait-for';
import { MessageFifo } from '../../backend/message-fifo';
import { InMemoryBroker, type MemoryConsumer } from './in-memory.broker';
import {
  heldBack,
  letThrough,
  type MemoryQueue,
  type QueuedMessage,
  queuedCopy,
} from './memory-queue';

const ACK: Settlement = { action: 'ack' };
const FAILURE = {
  reason: 'handler-error',
  message: 'boom',
  errorClass: 'Error',
  at: new Date(0),
} as const;

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
  it('holds publishers of a queue over its high-water mark until it is down to half', async () => {
    const queue: MemoryQueue = {
      name: 's.q',
      bindings: new Set(['fc.t']),
      messages: new MessageFifo<QueuedMessage>(),
      consumers: [consumer(() => Promise.resolve(ACK), 1)],
      next: 0,
      scheduled: false,
    };
    const fill = (n: number) => {
      for (let i = 0; i < n; i++) queue.messages.push(queuedCopy(message(i), 'fc.t'));
    };
    const drainTo = (n: number) => {
      while (queue.messages.size > n) queue.messages.shift();
      letThrough(queue);
    };
    // Microtasks only: the next-turn fallback (a setImmediate) cannot have run.
    const settle = () => Promise.resolve().then(() => undefined);
    fill(1_000);
    expect(heldBack(queue)).toBeUndefined(); // at the high-water mark, not over
    fill(1);
    let resumed = false;
    void heldBack(queue)?.then(() => (resumed = true));
    expect(heldBack(queue)).toBe(heldBack(queue)); // every publisher waits on one gate
    drainTo(501);
    await settle();
    expect(resumed).toBe(false);
    drainTo(500);
    await settle();
    expect(resumed).toBe(true);
    expect(queue.gate).toBeUndefined();
  });

  it('lets a held publisher of a backlogged queue go on before its consumers emptied it', async () => {
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
    for (let i = 0; i < 1_031; i++) broker.route(message(i));
    const held = broker.backpressure(message(0));
    expect(held).toBeInstanceOf(Promise);
    let handledWhenResumed = -1;
    void held?.then(() => (handledWhenResumed = handled));
    release.open();
    await waitFor(() => handled === 1_031);
    // Resumed at the low-water mark, or at the next turn when the broker yielded first: either way
    // while most of the backlog was still there.
    expect(handledWhenResumed).toBeGreaterThanOrEqual(0);
    expect(handledWhenResumed).toBeLessThan(1_031 - 400);
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

  it('holds retries on its scheduler and tells when it is idle, with or without them', async () => {
    const clock = new TestClock();
    const broker = new InMemoryBroker({ scheduler: clock });
    const release = gate();
    const attempts: number[] = [];
    broker.declareQueue('s.q', ['fc.t']);
    broker.addConsumer(
      's.q',
      consumer(async (delivery) => {
        attempts.push(delivery.attempt);
        await release.promise;
        return delivery.attempt < 2
          ? { action: 'retry', delayMs: 5_000, failure: FAILURE }
          : { action: 'dead-letter', failure: FAILURE };
      }, 1),
    );
    broker.route(message(1));
    let idle = false;
    let idleWithDelays = false;
    void broker.whenIdle({ includeDelayed: false }).then(() => (idle = true));
    void broker.whenIdle().then(() => (idleWithDelays = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(broker.work()).toEqual({
      inFlight: 1,
      delayed: 0,
      queues: [{ queue: 's.q', ready: 0, inFlight: 1 }],
    });
    expect(idle).toBe(false);

    release.open();
    await broker.whenIdle({ includeDelayed: false });
    expect(idle).toBe(true);
    expect(idleWithDelays).toBe(false); // the retry waits for the clock
    expect(broker.work()).toEqual({ inFlight: 0, delayed: 1, queues: [] });

    clock.advance(5_000);
    await broker.whenIdle();
    expect(idleWithDelays).toBe(true);
    expect(attempts).toEqual([1, 2]);
    expect(broker.listDeadLetters('s')).toHaveLength(1);
  });

  it('is idle with messages left in a queue nobody consumes', async () => {
    const broker = new InMemoryBroker();
    broker.declareQueue('s.orphan', ['fc.t']);
    broker.route(message(1));
    await broker.whenIdle();
    expect(broker.work().queues).toEqual([]);
  });

  it('gives up a wait when its signal aborts', async () => {
    const broker = new InMemoryBroker();
    const stuck = gate();
    broker.declareQueue('s.q', ['fc.t']);
    broker.addConsumer(
      's.q',
      consumer(() => stuck.promise.then(() => ACK), 1),
    );
    broker.route(message(1));
    const controller = new AbortController();
    const waiting = broker.whenIdle({ signal: controller.signal });
    controller.abort(new Error('gave up'));
    await expect(waiting).rejects.toThrow('gave up');
    stuck.open();
    await broker.whenIdle();
  });
});
