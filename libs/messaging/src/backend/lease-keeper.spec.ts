import { EXCLUSIVE_LEASE_MS, EXCLUSIVE_RENEW_MS, EXCLUSIVE_TAKEOVER_MS } from './exclusive';
import { LeaseKeeper, type LeaseStore } from './lease-keeper';

/** A broker's lease as the keeper sees it: answers set by the test, calls counted. */
function fakeStore(): LeaseStore & { answer: boolean | Error; takes: number; releases: number } {
  const store = {
    answer: true as boolean | Error,
    takes: 0,
    releases: 0,
    take: async () => {
      store.takes++;
      if (store.answer instanceof Error) throw store.answer;
      return store.answer;
    },
    release: async () => {
      store.releases++;
    },
  };
  return store;
}

describe('LeaseKeeper', () => {
  beforeEach(() => jest.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => jest.useRealTimers());

  it('takes a free lease at start and keeps it while renewals succeed', async () => {
    const store = fakeStore();
    const keeper = new LeaseKeeper(store, () => undefined);
    await keeper.start();
    expect(keeper.held).toBe(true);
    for (let i = 0; i < 5; i++) await jest.advanceTimersByTimeAsync(EXCLUSIVE_RENEW_MS);
    expect(store.takes).toBe(6);
    expect(keeper.held).toBe(true);
    await keeper.stop();
    expect(keeper.held).toBe(false);
    expect(store.releases).toBe(1);
  });

  it('stands by while another holds it, and wakes its waiters when it takes it', async () => {
    const store = fakeStore();
    store.answer = false;
    const keeper = new LeaseKeeper(store, () => undefined);
    await keeper.start();
    expect(keeper.held).toBe(false);
    let woken = false;
    void keeper.whenHeld().then(() => (woken = true));
    await jest.advanceTimersByTimeAsync(EXCLUSIVE_RENEW_MS);
    expect(woken).toBe(false);
    store.answer = true;
    await jest.advanceTimersByTimeAsync(EXCLUSIVE_RENEW_MS);
    expect(woken).toBe(true);
    expect(keeper.held).toBe(true);
    await keeper.stop();
  });

  it('stops holding a renewal period before the broker lets the lease go when renewals fail', async () => {
    const store = fakeStore();
    const errors: Error[] = [];
    const keeper = new LeaseKeeper(store, (error) => errors.push(error));
    await keeper.start();
    const renewedAt = Date.now();
    store.answer = new Error('broker unreachable');
    await jest.advanceTimersByTimeAsync(EXCLUSIVE_LEASE_MS - EXCLUSIVE_RENEW_MS - 1);
    expect(keeper.held).toBe(true);
    await jest.advanceTimersByTimeAsync(1);
    // The broker keeps it until renewedAt + EXCLUSIVE_LEASE_MS: this instance let go before that.
    expect(keeper.held).toBe(false);
    expect(Date.now() - renewedAt).toBe(EXCLUSIVE_LEASE_MS - EXCLUSIVE_RENEW_MS);
    expect(errors.length).toBeGreaterThan(0);
    await keeper.stop();
  });

  it('lets a standby take over within EXCLUSIVE_TAKEOVER_MS of a holder that stopped renewing', () => {
    // The holder's last renewal is at most EXCLUSIVE_RENEW_MS before its crash; the broker lets the
    // lease go EXCLUSIVE_LEASE_MS after it; a standby tries every EXCLUSIVE_RENEW_MS.
    expect(EXCLUSIVE_LEASE_MS + EXCLUSIVE_RENEW_MS).toBeLessThanOrEqual(EXCLUSIVE_TAKEOVER_MS);
  });

  it('resolves its waiters when told to, without the lease', async () => {
    const store = fakeStore();
    store.answer = false;
    const keeper = new LeaseKeeper(store, () => undefined);
    await keeper.start();
    const waiting = keeper.whenHeld();
    keeper.wakeWaiters();
    await expect(waiting).resolves.toBeUndefined();
    expect(keeper.held).toBe(false);
    await keeper.stop();
  });
});
