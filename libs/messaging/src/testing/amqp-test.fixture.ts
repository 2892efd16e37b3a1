/**
 * Shared set-up of the RabbitMQ specs of this folder: backends with a per-run exchange, a raw
 * amqplib connection for assertions, message and spec builders, and the clean-up of every queue and
 * exchange whose name carries the run id.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { Logger } from '@nestjs/common';
import * as amqplib from 'amqplib';
import type { ChannelModel } from 'amqplib';
import type {
  Delivery,
  FailureInfo,
  OutgoingMessage,
  Settlement,
  SubscriptionSpec,
} from '../backend/broker-backend.interface';
import { BROKER_URL, deleteBrokerObjects } from './rabbitmq.fixture';
import { AmqpBackend, type AmqpBackendOptions } from '../backends/amqp';

/** Broker URL of the RabbitMQ specs. */
export { BROKER_URL };

/** Runs a command (rabbitmqctl) and resolves with its output. */
export const runCommand = promisify(execFile);

/** PIDs of the broker's connections named `name` (their client properties carry it). */
export async function connectionPidsNamed(name: string): Promise<string[]> {
  const { stdout } = await runCommand('rabbitmqctl', [
    '-q',
    'list_connections',
    'pid',
    'client_properties',
  ]);
  return stdout
    .split('\n')
    .filter((line) => line.includes(name))
    .map((line) => line.split('\t')[0]);
}

/**
 * Closes, as the broker's operator would, only the connections named `name` (the broker is shared):
 * both of a backend that subscribes (publishing and consuming), as a lost link would. Throws if
 * there is none.
 */
export async function closeConnectionsNamed(name: string): Promise<void> {
  const pids = await connectionPidsNamed(name);
  if (pids.length === 0) throw new Error(`no connection named ${name}`);
  for (const pid of pids) {
    await runCommand('rabbitmqctl', ['-q', 'close_connection', pid, 'closed by the test']);
  }
}

/** A delivery as recorded by {@link AmqpTestFixture.collect}, with the time it arrived. */
export type RecordedDelivery = Delivery & { at: number };

/** Helpers of one spec file; create it with {@link useAmqpFixture} at the top of a `describe`. */
export interface AmqpTestFixture {
  readonly run: string;
  readonly topicPrefix: string;
  /** Errors reported by every backend the fixture made. */
  readonly errors: Error[];
  svc(name: string): string;
  make(extra?: Partial<AmqpBackendOptions>): Promise<AmqpBackend>;
  rawConnection(): Promise<ChannelModel>;
  message(
    target: { topic?: string; queue?: string },
    body?: unknown,
    extra?: Partial<OutgoingMessage>,
  ): OutgoingMessage;
  spec(
    service: string,
    route: string,
    topics: string[],
    extra?: Partial<SubscriptionSpec>,
  ): SubscriptionSpec;
  failure(message: string): FailureInfo;
  collect(settle?: (d: Delivery) => Settlement): {
    got: RecordedDelivery[];
    handler: (d: Delivery) => Promise<Settlement>;
  };
  queueDepth(queue: string): Promise<number>;
  consumerCount(queue: string): Promise<number>;
}

/** Registers the hooks that close backends after each test and delete this run's topology at the end. */
export function useAmqpFixture(): AmqpTestFixture {
  Logger.overrideLogger(['warn', 'error']);
  const run = randomUUID().slice(0, 8);
  const backends: AmqpBackend[] = [];
  const errors: Error[] = [];
  let raw: ChannelModel | undefined;
  let n = 0;

  const rawConnection = async (): Promise<ChannelModel> => {
    if (!raw) {
      const conn = await amqplib.connect(BROKER_URL);
      conn.on('error', () => undefined);
      conn.on('close', () => {
        if (raw === conn) raw = undefined;
      });
      raw = conn;
    }
    return raw;
  };
  const checkQueue = async (
    queue: string,
  ): Promise<{ messageCount: number; consumerCount: number }> => {
    const ch = await (await rawConnection()).createChannel();
    ch.on('error', () => undefined);
    try {
      return await ch.checkQueue(queue);
    } catch {
      return { messageCount: -1, consumerCount: -1 };
    } finally {
      await ch.close().catch(() => undefined);
    }
  };

  afterEach(async () => {
    await Promise.all(backends.splice(0).map((b) => b.close()));
  });

  afterAll(async () => {
    await raw?.close().catch(() => undefined);
    await deleteBrokerObjects(run);
  }, 30_000);

  return {
    run,
    topicPrefix: `t${run}`,
    errors,
    svc: (name) => `${name}-${run}`,
    make: async (extra = {}) => {
      const backend = new AmqpBackend({ url: BROKER_URL, exchange: `test-amqp-${run}`, ...extra });
      backend.on('error', (e) => errors.push(e));
      backends.push(backend);
      await backend.connect();
      return backend;
    },
    rawConnection,
    message: (target, body = {}, extra = {}) => ({
      ...target,
      body: Buffer.from(JSON.stringify(body)),
      headers: { 'x-test': 'yes' },
      messageId: `m-${++n}-${run}`,
      contentType: 'application/json',
      timestamp: Date.now(),
      ...extra,
    }),
    spec: (service, route, topics, extra = {}) => ({
      service,
      queue: `${service}.${route}`,
      topics,
      external: false,
      concurrency: 5,
      ...extra,
    }),
    failure: (message) => ({
      reason: 'handler-error',
      message,
      errorClass: 'Error',
      at: new Date(),
    }),
    collect: (settle = () => ({ action: 'ack' })) => {
      const got: RecordedDelivery[] = [];
      const handler = async (d: Delivery): Promise<Settlement> => {
        got.push({ ...d, at: Date.now() });
        return settle(d);
      };
      return { got, handler };
    },
    queueDepth: async (queue) => (await checkQueue(queue)).messageCount,
    consumerCount: async (queue) => (await checkQueue(queue)).consumerCount,
  };
}
