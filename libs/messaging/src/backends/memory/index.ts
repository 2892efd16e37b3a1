export { InMemoryBackend, type InMemoryBackendOptions } from './in-memory.backend';
export { InMemoryBroker } from './in-memory.broker';
