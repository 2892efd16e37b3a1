/**
 * nest-messaging (`@app/messaging` inside this repository): decorator-based messaging for NestJS with
 * durable retries and dead letters over pluggable brokers. This is the entry point for applications;
 * the other entry points are:
 *
 * | entry                    | for                                                                   |
 * | ------------------------ | --------------------------------------------------------------------- |
 * | `nest-messaging/amqp`    | the RabbitMQ backend alone (also exported here)                       |
 * | `nest-messaging/memory`  | the in-memory backend alone (also exported here)                      |
 * | `nest-messaging/redis`   | the Redis Streams backend alone (also exported here)                  |
 * | `nest-messaging/nats`    | the NATS JetStream backend alone (also exported here)                 |
 * | `nest-messaging/testing` | test helpers: `waitFor`, `gate`, a harness that starts apps per test  |
 * | `nest-messaging/backend` | writing a backend: the contract's types, header helpers, contract suite |
 *
 * Everything public is listed here by name; nothing else is reachable (the package's `exports` map).
 */

// Nest integration
export { MessagingModule } from './module/messaging.module';
export type { MessagingModuleOptions } from './options/messaging-options';
export type { BackoffOptions, RetryOptions } from './retry/retry-options';
export type { CodecOptions } from './codec/codec-options';
export type {
  CloudEventAttributes,
  CloudEventDelivery,
  CloudEventsOptions,
} from './codec/cloud-events';
export { MessagingServer } from './server/messaging.server';
export { MessagingClient } from './client/messaging.client';
export { MessageContext } from './context/message-context';
export { BatchContext } from './context/batch-context';
/** The library's `x-messaging-*` header names, as a handler reads them from `ctx.headers`. */
export { MessagingHeaders } from './backend/message-headers';
export type { MessageHeaders } from './backend/broker-backend.interface';

// Consuming and producing
export {
  Consume,
  type ConsumeDefinitionInput,
  type ConsumeOptions,
} from './decorators/consume.decorator';
export type { BatchOptions } from './decorators/batch-options';
export type { Upcaster, Upcasters } from './decorators/message-versions';
export { Producer, getProducerToken, type ProducerTarget } from './decorators/producer.decorator';
export { MessageProducer } from './producer/message-producer';
export {
  MessagingPublisher,
  type PublishOptions,
  type RequestOptions,
} from './producer/messaging.publisher';

// Exactly-once effects: the inbox of idempotent handlers and the transactional outbox
export type {
  InboxKey,
  MessageStore,
  OutboxBacklog,
  OutboxBatch,
  OutboxMessage,
  OutboxRow,
  StoreTransaction,
} from './store/message-store';
export { InMemoryMessageStore } from './store/in-memory.store';
export {
  PostgresMessageStore,
  type PgClientLike,
  type PgPoolLike,
  type PostgresMessageStoreOptions,
} from './store/postgres/postgres.store';
export { postgresMigrationSql } from './store/postgres/postgres-schema';
export { MessagingTransactions } from './store/transactions';
export { OutboxRelay, type OutboxState } from './store/outbox-relay';
export type { OutboxOptions } from './store/outbox-options';
export type { InboxOptions } from './options/messaging-options';

// Operations
export { DeadLetterService, type DeadLetterEntry } from './dead-letters/dead-letter.service';
export {
  MessagingHealthService,
  type ConnectionHealth,
  type HandlerHealth,
  type MessagingHealth,
} from './health/messaging-health.service';
export type { HealthOptions } from './options/messaging-options';
export {
  MESSAGING_METRICS,
  type ConsumeOutcome,
  type MessagingCounter,
  type MessagingGauge,
  type MessagingHistogram,
  type MessagingMetrics,
  type MetricDefinition,
  type MetricLabels,
} from './observability/messaging-metrics';
export {
  PrometheusMessagingMetrics,
  type PrometheusMessagingMetricsOptions,
  type PromRegistryLike,
} from './observability/prometheus-metrics';
export {
  currentMessage,
  type CurrentMessage,
  type RequestContextMode,
} from './observability/message-scope';
export { parseTraceparent, type TraceContext } from './observability/trace-context';
export {
  type AsyncApiBroker,
  asyncApiDocument,
  type AsyncApiDocumentOptions,
} from './asyncapi/asyncapi-document';

// Errors
export {
  BackendClosedError,
  BatchFailure,
  type BatchItemFailure,
  MalformedMessageError,
  MessagingConfigError,
  MessagingError,
  PayloadTooLargeError,
  PublishBackpressureError,
  PublishFailedError,
  PublishTimeoutError,
  RemoteHandlerError,
  RequestTimeoutError,
  UnrecoverableError,
  UnroutableError,
} from './errors/messaging.errors';
export type { FailureReason } from './errors/failure';

// Backends (each loads its broker's client only when constructed)
export type { BackendStatus, BrokerBackend, DeadLetter } from './backend/broker-backend.interface';
export { InMemoryBackend, InMemoryBroker, type InMemoryBackendOptions } from './backends/memory';
export {
  AmqpBackend,
  type AmqpBackendOptions,
  type AmqpReconnectOptions,
  type AmqpTlsOptions,
} from './backends/amqp';
export { RedisStreamsBackend, type RedisStreamsBackendOptions } from './backends/redis';
export { NatsBackend, type NatsBackendOptions } from './backends/nats';
export {
  backendFromUrl,
  BROKER_URL_SCHEMES,
  type BackendFromUrlOptions,
} from './backends/backend-from-url';
