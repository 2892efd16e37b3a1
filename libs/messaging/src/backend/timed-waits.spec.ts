import { TimedWaits } from './timed-waits';

describe('TimedWaits: what drains, holds and pauses wait on', () => {
  it('resolves every waiter when wakeAll() is called', async () => {
    const waiters = new TimedWaits();
    const order: string[] = [];
    const a = waiters.wait(60_000).then(() => order.push('a'));
    const b = waiters.wait(60_000).then(() => order.push('b'));
    await new Promise(setImmediate);
    expect(order).toEqual([]);
    waiters.wakeAll();
    await Promise.all([a, b]);
    expect(order).toEqual(['a', 'b']);
  });

  it('resolves after the timeout when nothing settles, and forgets the waiter', async () => {
    jest.useFakeTimers();
    try {
      const waiters = new TimedWaits();
      let done = false;
      const waiting = waiters.wait(500).then(() => (done = true));
      jest.advanceTimersByTime(499);
      await Promise.resolve();
      expect(done).toBe(false);
      jest.advanceTimersByTime(1);
      await waiting;
      expect(done).toBe(true);
      waiters.wakeAll(); // no waiter left: nothing to do
    } finally {
      jest.useRealTimers();
    }
  });
});
