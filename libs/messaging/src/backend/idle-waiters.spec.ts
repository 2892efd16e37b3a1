import { IdleWaiters } from './idle-waiters';

describe('IdleWaiters: what drain(timeoutMs) waits on', () => {
  it('resolves every waiter when idle() is called', async () => {
    const waiters = new IdleWaiters();
    const order: string[] = [];
    const a = waiters.whenIdle(60_000).then(() => order.push('a'));
    const b = waiters.whenIdle(60_000).then(() => order.push('b'));
    await new Promise(setImmediate);
    expect(order).toEqual([]);
    waiters.idle();
    await Promise.all([a, b]);
    expect(order).toEqual(['a', 'b']);
  });

  it('resolves after the timeout when nothing settles, and forgets the waiter', async () => {
    jest.useFakeTimers();
    try {
      const waiters = new IdleWaiters();
      let done = false;
      const waiting = waiters.whenIdle(500).then(() => (done = true));
      jest.advanceTimersByTime(499);
      await Promise.resolve();
      expect(done).toBe(false);
      jest.advanceTimersByTime(1);
      await waiting;
      expect(done).toBe(true);
      waiters.idle(); // no waiter left: nothing to do
    } finally {
      jest.useRealTimers();
    }
  });
});
