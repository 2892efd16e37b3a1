/** `nest-messaging/memory`: the embedded in-process backend, the default; no broker needed. */
export { InMemoryBackend, type InMemoryBackendOptions } from './in-memory.backend';
export { InMemoryBroker, type InMemoryBrokerOptions } from './in-memory.broker';
export type { DelayScheduler } from './delay-scheduler';
export type { BrokerWork, IdleOptions, QueueWork } from './broker-activity';
