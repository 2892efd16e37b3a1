import { BackendClosedError } from '../errors/messaging.errors';
import { ConsumerSet, type SetConsumer } from './consumer-set';

/** A consumer that records what the set did to it; its drain ends when `settle()` is called. */
class FakeConsumer implements SetConsumer {
  readonly calls: string[] = [];
  private settled!: () => void;
  private readonly idle = new Promise<void>((resolve) => (this.settled = resolve));
  constructor(readonly queue: string) {}
  get state() {
    return { queue: this.queue, attached: !this.calls.includes('cancel') };
  }
  async cancel(): Promise<void> {
    this.calls.push('cancel');
  }
  async drain(): Promise<void> {
    this.calls.push('drain');
    await this.idle;
  }
  settle(): void {
    this.settled();
  }
}

/** A start that ends when told to. */
function gate(): { start: () => Promise<void>; open: () => void; fail: (e: Error) => void } {
  let open!: () => void;
  let fail!: (e: Error) => void;
  const started = new Promise<void>((resolve, reject) => ((open = resolve), (fail = reject)));
  return { start: () => started, open, fail };
}

/** Close of `set` ends only once the retired `consumer`'s deliveries settled. */
async function expectCloseToWaitFor(
  set: ConsumerSet<FakeConsumer>,
  consumer: FakeConsumer,
): Promise<void> {
  let closed = false;
  const closing = set.close().then(() => (closed = true));
  await new Promise(setImmediate);
  expect(closed).toBe(false);
  consumer.settle();
  await closing;
  expect(closed).toBe(true);
}

describe('ConsumerSet: subscribe and close, whichever comes first', () => {
  const CLOSED = "closed while 'q' was starting";

  it('adds a started consumer, reports its state, and retires it on cancel', async () => {
    const set = new ConsumerSet<FakeConsumer>({ drainMs: 1_000 });
    const consumer = new FakeConsumer('q');
    const subscription = await set.start(consumer, async () => undefined, CLOSED);
    expect(set.states()).toEqual([{ queue: 'q', attached: true }]);
    await subscription.cancel();
    await subscription.cancel(); // idempotent
    expect(consumer.calls).toEqual(['cancel', 'drain']);
    expect(set.states()).toEqual([]);
    await expectCloseToWaitFor(set, consumer);
  });

  it('refuses a subscribe once close began', async () => {
    const set = new ConsumerSet<FakeConsumer>({ drainMs: 1_000 });
    await set.close();
    const start = jest.fn(async () => undefined);
    await expect(set.start(new FakeConsumer('q'), start, CLOSED)).rejects.toThrow(
      new BackendClosedError(CLOSED),
    );
    expect(start).not.toHaveBeenCalled();
  });

  it.each([
    ['waits for a start, then stops it', false, ['cancel', 'drain']],
    ['cancels a start that can be cancelled, then stops it', true, ['cancel', 'cancel', 'drain']],
  ])('close while a consumer starts %s', async (_how, cancelsStart, calls) => {
    const set = new ConsumerSet<FakeConsumer>({ drainMs: 1_000, cancelsStart });
    const consumer = new FakeConsumer('q');
    consumer.settle();
    const { start, open } = gate();
    const subscribed = set.start(consumer, start, CLOSED);
    const closing = set.close();
    await new Promise(setImmediate);
    expect(consumer.calls).toEqual(cancelsStart ? ['cancel'] : []);
    open();
    await expect(subscribed).rejects.toThrow(new BackendClosedError(CLOSED));
    expect(await closing).toEqual([consumer]);
    expect(consumer.calls).toEqual(calls);
    expect(set.states()).toEqual([]);
  });

  it('retires a consumer whose start failed, so that close waits for what it took', async () => {
    const set = new ConsumerSet<FakeConsumer>({ drainMs: 1_000 });
    const consumer = new FakeConsumer('q');
    const { start, fail } = gate();
    const subscribed = set.start(consumer, start, CLOSED);
    fail(new Error('no such stream'));
    await expect(subscribed).rejects.toThrow('no such stream');
    expect(consumer.calls).toEqual(['drain']);
    expect(set.states()).toEqual([]);
    await expectCloseToWaitFor(set, consumer);
  });
});
