/**
 * @app/messaging: decorator-based messaging for NestJS with durable retries and dead letters over
 * pluggable brokers. Everything public is listed here, by name.
 */

// Nest integration
export { MessagingModule } from './module/messaging.module';
export {
  DEFAULT_BACKOFF,
  DEFAULT_CODEC,
  DEFAULT_CONCURRENCY,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_RETRY,
  DEFAULT_SHUTDOWN_TIMEOUT_MS,
  MAX_DELAY_MS,
  resolveMessagingOptions,
  type BackoffOptions,
  type CodecOptions,
  type MessagingModuleOptions,
  type ResolvedMessagingOptions,
  type RetryOptions,
} from './module/messaging-options';
export { MessagingServer } from './server/messaging.server';
export { MessageErrorFilter } from './server/message-error.filter';
export { MessagingClient } from './client/messaging.client';
export { MessageContext } from './context/message-context';
export {
  Consume,
  type ConsumeDefinitionInput,
  type ConsumeOptions,
} from './decorators/consume.decorator';
export { Producer, getProducerToken, type ProducerTarget } from './decorators/producer.decorator';
export { MessageProducer } from './producer/message-producer';
export {
  MessagingPublisher,
  type PublishOptions,
  type RequestOptions,
} from './producer/messaging.publisher';
export { DeadLetterService, type DeadLetterEntry } from './dead-letters/dead-letter.service';
export { MessagingHealthService, type MessagingHealth } from './module/messaging-health.service';
export { MESSAGING_BACKEND, MESSAGING_OPTIONS, MESSAGING_TRANSPORT } from './messaging.constants';

// Errors
export {
  BackendClosedError,
  MalformedMessageError,
  MessagingConfigError,
  MessagingError,
  PayloadTooLargeError,
  PublishFailedError,
  PublishTimeoutError,
  RemoteHandlerError,
  RequestTimeoutError,
  UnrecoverableError,
  UnroutableError,
} from './errors/messaging.errors';

// Retry policy and codec (pure, reusable by backends and tests)
export {
  classifyFailure,
  computeBackoffDelay,
  decideSettlement,
  type ResolvedBackoff,
  type ResolvedRetryPolicy,
  type SettlementInput,
} from './retry/retry-policy';
export { MessageCodec, type CodecSettings, type EncodedBody } from './codec/message-codec';

// Backends
export {
  MessagingHeaders,
  type BackendEvents,
  type BackendPublishOptions,
  type BackendRequestOptions,
  type BackendStatus,
  type BackendSubscription,
  type BrokerBackend,
  type DeadLetter,
  type Delivery,
  type DeliveryHandler,
  type FailureInfo,
  type FailureReason,
  type HeaderValue,
  type IncomingReply,
  type MessageHeaders,
  type OutgoingMessage,
  type OutgoingReply,
  type Settlement,
  type SubscriptionSpec,
} from './backend/broker-backend.interface';
export { BackendEventHub } from './backend/backend-events';
export { topicMatches } from './backend/topic-matcher';
export { InMemoryBackend, InMemoryBroker, type InMemoryBackendOptions } from './backends/memory';
export {
  AmqpBackend,
  DEFAULT_AMQP_OPTIONS,
  DELAY_TIERS_MS,
  redactCredentials,
  type AmqpBackendOptions,
  type AmqpReconnectOptions,
  type AmqpTlsOptions,
} from './backends/amqp';
