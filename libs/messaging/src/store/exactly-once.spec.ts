import { InMemoryBackend } from '../backends/memory/in-memory.backend';
import { InMemoryBroker } from '../backends/memory/in-memory.broker';
import { runExactlyOnceContract } from '../testing/exactly-once-contract';
import { InMemoryMessageStore } from './in-memory.store';

const broker = new InMemoryBroker();
// One store for every app, as apps of one service share one database (its close() keeps the data).
const store = new InMemoryMessageStore();
runExactlyOnceContract(
  'memory backend, memory store',
  () => new InMemoryBackend({ broker }),
  () => store,
  async (store) => (store as InMemoryMessageStore).waitingClaims,
);
