/**
 * @app/messaging: decorator-based messaging for NestJS with durable retries and dead letters over
 * pluggable brokers.
 */
export * from './backend/broker-backend.interface';
export { topicMatches } from './backend/topic-matcher';
export { BackendEventHub } from './backend/backend-events';
export * from './backends/memory';
export * from './backends/amqp';
export { MessagingClient } from './client/messaging.client';
export { MessageCodec, type CodecSettings, type EncodedBody } from './codec/message-codec';
export { MessageContext } from './context/message-context';
export { DeadLetterService, type DeadLetterEntry } from './dead-letters/dead-letter.service';
export {
  Consume,
  type ConsumeOptions,
  type ConsumeDefinitionInput,
} from './decorators/consume.decorator';
export { Producer, getProducerToken, type ProducerTarget } from './decorators/producer.decorator';
export * from './errors/messaging.errors';
export { MESSAGING_BACKEND, MESSAGING_OPTIONS, MESSAGING_TRANSPORT } from './messaging.constants';
export { MessagingHealthService, type MessagingHealth } from './module/messaging-health.service';
export * from './module/messaging-options';
export { MessagingModule } from './module/messaging.module';
export { MessageProducer } from './producer/message-producer';
export {
  MessagingPublisher,
  type PublishOptions,
  type RequestOptions,
} from './producer/messaging.publisher';
export {
  computeBackoffDelay,
  decideSettlement,
  classifyFailure,
  type ResolvedBackoff,
  type ResolvedRetryPolicy,
  type SettlementInput,
} from './retry/retry-policy';
export { MessagingServer } from './server/messaging.server';
