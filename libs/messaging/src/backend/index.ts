/**
 * `nest-messaging/backend`: for people writing a broker backend. A backend implements
 * `BrokerBackend` (mechanics only: the core decides every settlement), stamps retries and dead letters
 * with the header helpers, and proves itself with one spec:
 *
 * @example
 * // redis.contract.spec.ts
 * import { runBackendContract } from 'nest-messaging/backend';
 * import { RedisStreamsBackend } from 'nest-messaging/redis';
 * runBackendContract('redis', () => new RedisStreamsBackend({ url: 'redis://127.0.0.1:6379' }));
 */
import type { BackendContractOptions } from '../testing/contract-harness';
import type { BrokerBackend } from './broker-backend.interface';

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
export type { BackendContractOptions };

/**
 * Registers the shared contract suite (Jest `describe`/`it`) for a backend: routing, fan-out and
 * competing consumers, wildcards, requests, unroutable and delayed publishes, concurrency, graceful
 * close, retries, dead letters, bad input and replay, each through real Nest apps. `createBackend` is
 * called once per app, as separate processes would each have their own backend.
 *
 * Loaded when called: the suite needs `@nestjs/testing`, `class-validator` and `class-transformer`
 * (dev dependencies), which the production code of a backend never loads.
 */
export function runBackendContract(
  name: string,
  createBackend: () => BrokerBackend,
  options?: BackendContractOptions,
): void {
  let suite: typeof import('../testing/backend-contract');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    suite = require('../testing/backend-contract') as typeof import('../testing/backend-contract');
  } catch (error) {
    throw new Error(
      'runBackendContract needs @nestjs/testing, class-validator and class-transformer: ' +
        `npm install -D @nestjs/testing class-validator class-transformer (${String(error)})`,
      { cause: error },
    );
  }
  suite.runBackendContract(name, createBackend, options);
}
