import { runStoreContract } from '../testing/store-contract';
import { InMemoryMessageStore } from './in-memory.store';

runStoreContract('memory', async () => {
  const store = new InMemoryMessageStore();
  return { store, waitingClaims: async () => store.waitingClaims, dispose: async () => {} };
});

describe('InMemoryMessageStore without a relay', () => {
  afterEach(() => jest.useRealTimers());

  it('purges expired inbox entries as new ones commit (no relay runs on it to purge them)', async () => {
    jest.useFakeTimers({ now: 0, doNotFake: ['nextTick', 'setImmediate'] });
    const store = new InMemoryMessageStore();
    const claim = (messageId: string, ttlMs: number) =>
      store.transaction((tx) => tx.claim({ service: 's', route: 'R.r', messageId }, ttlMs));
    await claim('short', 1_000);
    jest.setSystemTime(30_000);
    await claim('within-the-minute', 1_000);
    jest.setSystemTime(61_000); // a minute after the last purge: this commit purges
    await claim('after-the-minute', 3_600_000);
    expect(await store.purgeExpired()).toBe(0); // both 1 s entries were gone already
  });
});
