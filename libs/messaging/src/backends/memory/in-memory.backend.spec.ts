import { runBackendContract } from '../../testing';
import { InMemoryBackend } from './in-memory.backend';
import { InMemoryBroker } from './in-memory.broker';

const broker = new InMemoryBroker();
runBackendContract('memory', () => new InMemoryBackend({ broker }), {
  // A process that dies drops what it holds unsettled: in memory, a close that settles nothing.
  exclusive: {
    crashable: async () => {
      const backend = new InMemoryBackend({ broker });
      return { backend, crash: () => backend.close() };
    },
  },
});
