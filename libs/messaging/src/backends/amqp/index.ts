export { AmqpBackend } from './amqp.backend';
export type {
  AmqpBackendOptions,
  AmqpReconnectOptions,
  AmqpTlsOptions,
} from './amqp-backend.options';
export { DEFAULT_AMQP_OPTIONS, redactCredentials } from './amqp-backend.options';
export { DELAY_TIERS_MS } from './amqp-topology';
