import { randomUUID } from 'node:crypto';
import type { INestApplication, Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { BrokerBackend } from '../backend/broker-backend.interface';
import type { MessagingModuleOptions } from '../options/messaging-options';
import { MessagingModule } from '../module/messaging.module';
import { MessagingPublisher } from '../producer/messaging.publisher';
import { MessagingServer } from '../server/messaging.server';

/** Options of the contract suite. */
export interface BackendContractOptions {
  /** Prefix of every service name the suite uses, so a spec can clean up after it. */
  servicePrefix?: string;
  /** How to check the backend's exclusive subscriptions (`exclusive-contract.ts`). */
  exclusive?: ExclusiveContractOptions;
}

/** What the exclusive contract needs to know of a backend beyond its factory. */
export interface ExclusiveContractOptions {
  /**
   * A backend that can be made to crash: `crash()` stops it as a dead process stops (no more
   * deliveries, settlements or lease renewals, nothing given back or released: its connections cut
   * or black-holed, say), `dispose()` cleans up after the test. Without it the crash case is left out.
   */
  crashable?(): Promise<CrashableBackend>;
  /**
   * Whether subscribing to a queue with the other kind of consumers than it has fails at start-up
   * (a broker that keeps the kind with the queue). @default true
   */
  refusesMismatch?: boolean;
}

/** See {@link ExclusiveContractOptions.crashable}. */
export interface CrashableBackend {
  readonly backend: BrokerBackend;
  crash(): void | Promise<void>;
  dispose?(): void | Promise<void>;
}

/** Fast retries for tests: 3 attempts, 100 ms then 200 ms, no jitter. */
export const FAST_RETRY = {
  maxAttempts: 3,
  backoff: { initialDelayMs: 100, multiplier: 2, maxDelayMs: 1000, jitter: 0 },
};

/** What the contract tests use to build apps on the backend under test. */
export interface ContractHarness {
  /** A new backend instance (each app gets its own, as separate processes would). */
  createBackend(): BrokerBackend;
  /** A service name (consumer group) and topic prefix unique to this test. */
  unique(): { service: string; topic: string };
  /** Starts a Nest app of `service` with `controllers` as consumers; closed after the test. */
  start(
    service: string,
    controllers: Type[],
    moduleOptions?: Partial<MessagingModuleOptions>,
  ): Promise<INestApplication>;
  publisherOf(app: INestApplication): MessagingPublisher;
  /** Stops tracking an app the test closes itself. */
  forget(app: INestApplication): void;
}

/**
 * For contracts that drive backends directly, each instance standing for a process: returns
 * `connected(count, make)`, which connects `count` backends made by `make` (`createBackend` by
 * default), and registers the hook that closes them after each test.
 */
export function useConnectedBackends(
  createBackend: () => BrokerBackend,
): (count: number, make?: () => BrokerBackend) => Promise<BrokerBackend[]> {
  let open: BrokerBackend[] = [];
  afterEach(async () => {
    const backends = open;
    open = [];
    await Promise.all(backends.map((b) => b.close()));
  });
  return async (count, make = createBackend) => {
    const backends = Array.from({ length: count }, make);
    open.push(...backends);
    await Promise.all(backends.map((b) => b.connect()));
    return backends;
  };
}

/** Builds the harness and registers the hook that closes every app after each test. */
export function useContractHarness(
  createBackend: () => BrokerBackend,
  options: BackendContractOptions = {},
): ContractHarness {
  const runId = randomUUID().slice(0, 8);
  const prefix = options.servicePrefix ?? 'contract';
  let apps: INestApplication[] = [];
  let counter = 0;

  afterEach(async () => {
    const open = apps;
    apps = [];
    await Promise.all(open.map((app) => app.close()));
  });

  return {
    createBackend,
    unique: () => {
      counter++;
      return { service: `${prefix}-${runId}-${counter}`, topic: `ct${runId}.t${counter}` };
    },
    start: async (service, controllers, moduleOptions = {}) => {
      const moduleRef = await Test.createTestingModule({
        imports: [MessagingModule.forRoot({ backend: createBackend(), service, ...moduleOptions })],
        controllers,
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      app.connectMicroservice({ strategy: app.get(MessagingServer) }, { inheritAppConfig: true });
      apps.push(app);
      await app.startAllMicroservices();
      await app.init();
      return app;
    },
    publisherOf: (app) => app.get(MessagingPublisher),
    forget: (app) => {
      apps = apps.filter((a) => a !== app);
    },
  };
}
