import { runBackendContract } from '../../backend';
import { InMemoryBackend } from './in-memory.backend';
import { InMemoryBroker } from './in-memory.broker';

const broker = new InMemoryBroker();
runBackendContract('memory', () => new InMemoryBackend({ broker }));
