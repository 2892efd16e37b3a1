/**
 * `runBackendContract` of `nest-messaging/testing`: the one spec a backend needs. The suite itself
 * (`backend-contract.ts`) is loaded when called, because its validation and batch cases need
 * `class-validator` and `class-transformer`, which an app whose tests only use `MessagingTestKit`
 * need not install.
 */
import type { BrokerBackend } from '../backend/broker-backend.interface';
import type { BackendContractOptions } from './contract-harness';

/**
 * Registers the shared contract suite (Jest `describe`/`it`) for a backend: routing, fan-out and
 * competing consumers, wildcards, requests, unroutable and delayed publishes, concurrency, graceful
 * close, retries, dead letters, bad input and replay, each through real Nest apps; then single
 * active consumers on backends directly. `createBackend` is called once per app, as separate
 * processes would each have their own backend.
 *
 * @example
 * // redis.backend.spec.ts
 * import { runBackendContract } from 'nest-messaging/testing';
 * runBackendContract('redis', () => new RedisBackend({ url: 'redis://127.0.0.1:6379' }));
 */
export function runBackendContract(
  name: string,
  createBackend: () => BrokerBackend,
  options?: BackendContractOptions,
): void {
  let suite: typeof import('./backend-contract');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    suite = require('./backend-contract') as typeof import('./backend-contract');
  } catch (error) {
    throw new Error(
      'runBackendContract needs @nestjs/testing, class-validator and class-transformer: ' +
        `npm install -D @nestjs/testing class-validator class-transformer (${String(error)})`,
      { cause: error },
    );
  }
  suite.describeBackendContract(name, createBackend, options);
}
