/**
 * `nest-messaging/testing`: helpers for tests of apps that use the library. `waitFor` and `gate`
 * replace fixed sleeps; `useContractHarness` starts Nest apps on a backend and closes them after each
 * test (it registers Jest's `afterEach`). Needs `@nestjs/testing` (a dev dependency of your app).
 */
export { gate, waitFor } from './wait-for';
export {
  FAST_RETRY,
  useContractHarness,
  type BackendContractOptions,
  type ContractHarness,
} from './contract-harness';
export { runStoreContract, type StoreUnderTest } from './store-contract';
export { runExactlyOnceContract } from './exactly-once-contract';
