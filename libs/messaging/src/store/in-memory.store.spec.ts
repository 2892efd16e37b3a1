import { runStoreContract } from '../testing/store-contract';
import { InMemoryMessageStore } from './in-memory.store';

runStoreContract('memory', async () => ({
  store: new InMemoryMessageStore(),
  dispose: async () => {},
}));
