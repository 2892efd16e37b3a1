/**
 * `nest-messaging/nats`: the NATS JetStream backend. `@nats-io/transport-node` and
 * `@nats-io/jetstream` are loaded when `NatsBackend` is constructed.
 */
export { NatsBackend } from './nats.backend';
export type { NatsBackendOptions } from './nats-backend.options';
