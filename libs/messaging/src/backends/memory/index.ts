/** `nest-messaging/memory`: the embedded in-process backend, the default; no broker needed. */
export { InMemoryBackend, type InMemoryBackendOptions } from './in-memory.backend';
export { InMemoryBroker } from './in-memory.broker';
