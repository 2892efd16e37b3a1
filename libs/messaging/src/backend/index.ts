/**
 * `nest-messaging/backend`: for people writing a broker backend. A backend implements
 * `BrokerBackend` (mechanics only: the core decides every settlement), stamps retries and dead letters
 * with the header helpers, dead-letters what passed its delivery limit by `decideDeliveryLimit()`, and
 * proves itself with one spec that calls `runBackendContract` of `nest-messaging/testing` (the test
 * helpers live there, so that nothing here loads them):
 *
 * @example
 * // redis.contract.spec.ts
 * import { runBackendContract } from 'nest-messaging/testing';
 * import { RedisStreamsBackend } from 'nest-messaging/redis';
 * runBackendContract('redis', () => new RedisStreamsBackend({ url: 'redis://127.0.0.1:6379' }));
 */
export type {
  BackendEvents,
  BackendPublishOptions,
  BackendRequestOptions,
  BackendStatus,
  BackendSubscription,
  BrokerBackend,
  ConsumerState,
  DeadLetter,
  DeadLetterAdmin,
  DeadLetterPage,
  DeadLetterPurge,
  DeadLetterReplay,
  Delivery,
  DeliveryHandler,
  FailureInfo,
  FailureReason,
  HeaderValue,
  IncomingReply,
  MessageHeaders,
  OutgoingMessage,
  OutgoingReply,
  Settlement,
  SubscriptionSpec,
} from './broker-backend.interface';
export {
  attemptOf,
  deadLetterHeaders,
  MessagingHeaders,
  producerHeaders,
  readDeadLetter,
  replayHeaders,
  retryHeaders,
  topicOf,
  type StoredMessage,
} from './message-headers';
export { BackendEventHub } from './backend-events';
export { guardDeadLetters, type DeadLetterOwner, type DeadLetterStore } from './dead-letter-admin';
export { PendingRequest, PendingRequests } from './pending-requests';
export { topicMatches } from './topic-matcher';
export { deadLetterQueueName } from './queue-names';
export { EXCLUSIVE_TAKEOVER_MS } from './exclusive';
export {
  decideDeliveryLimit,
  type DeliveryCount,
  type DeliveryLimitVerdict,
} from './delivery-limit';
