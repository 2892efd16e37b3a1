import { InMemoryBackend } from '../backends/memory/in-memory.backend';
import { InMemoryBroker } from '../backends/memory/in-memory.broker';
import { runExactlyOnceContract } from '../testing/exactly-once-contract';
import { InMemoryMessageStore } from './in-memory.store';

const broker = new InMemoryBroker();
runExactlyOnceContract(
  'memory backend, memory store',
  () => new InMemoryBackend({ broker }),
  () => new InMemoryMessageStore(),
  async (store) => (store as InMemoryMessageStore).waitingClaims,
);
