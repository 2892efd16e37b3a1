/**
 * `nest-messaging/testing`: helpers for tests of apps that use the library. `MessagingTestKit` boots
 * an app on its own in-memory broker and tells when everything a publish caused has settled, with
 * the published messages, dead letters, a clock for backoff delays and request stubs; `waitFor` and
 * `gate` replace fixed sleeps; `useContractHarness` starts Nest apps on a backend and closes them
 * after each test (it registers Jest's `afterEach`); `runBackendContract`, `runStoreContract` and
 * `runExactlyOnceContract` are the suites a backend or a message store of your own passes. Needs
 * `@nestjs/testing` (a dev dependency of your app).
 */
export {
  MessagingTestKit,
  SettleTimeoutError,
  type DecodedDeadLetter,
  type MessagingTestKitOptions,
  type PublishedMessage,
  type TestKitContext,
  type TestKitMetadata,
} from './messaging-test-kit';
export type { MessagingTestClock } from './kit-clock';
export { TestClock } from './test-clock';
export { STUB_SERVICE, type StubbedMessage, type StubHandler } from './topic-stubs';
export { gate, waitFor } from './wait-for';
export {
  FAST_RETRY,
  useContractHarness,
  type BackendContractOptions,
  type ContractHarness,
} from './contract-harness';
export { runBackendContract } from './run-backend-contract';
export { runStoreContract, type StoreUnderTest } from './store-contract';
export { runForeignIdContract } from './foreign-id-contract';
export { runExactlyOnceContract } from './exactly-once-contract';
