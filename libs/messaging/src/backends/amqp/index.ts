/** `nest-messaging/amqp`: the RabbitMQ backend. `amqplib` is loaded when `AmqpBackend` is constructed. */
export { AmqpBackend } from './amqp.backend';
export type {
  AmqpBackendOptions,
  AmqpReconnectOptions,
  AmqpTlsOptions,
} from './amqp-backend.options';
