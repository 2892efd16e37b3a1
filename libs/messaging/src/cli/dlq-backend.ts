/**
 * The broker backend of `nest-messaging dlq`, picked by the URL's scheme (the library's one map,
 * `backendFromUrl`), and its lifetime: connect, work, close whatever happened. A backend's module
 * (and its client library: `amqplib`, `ioredis`, the NATS packages) is loaded only when a dlq
 * command runs, and only the one its URL names.
 */
import type { BrokerBackend } from '../backend/broker-backend.interface';
import { redactCredentials } from '../backend/redact-credentials';
import { backendFromUrl, urlScheme } from '../backends/backend-from-url';
import { MessagingConfigError } from '../errors/messaging.errors';
import { CliUsageError } from './cli-io';

/** The broker a dlq command talks to, from its connection options. */
export interface BrokerTarget {
  /** The broker URL; it may hold credentials, so it is only ever shown redacted. */
  readonly url: string;
  /**
   * The services' namespace (`--namespace`, the backends' `namespace`): the topic exchange on
   * RabbitMQ, the key prefix on Redis, the subject and stream prefix on NATS.
   */
  readonly namespace: string;
  /** How long to keep trying to reach the broker before failing. */
  readonly connectTimeoutMs: number;
  /** Where the backend's own warnings and errors go (stderr). */
  readonly warn: (line: string) => void;
}

/** Makes the backend for one URL scheme. */
export type BackendFactory = (target: BrokerTarget) => BrokerBackend;

/** Backend factories by URL scheme, lower case, without `://` (tests give a `memory://` one). */
export type BackendFactories = Readonly<Record<string, BackendFactory>>;

/** The broker when neither `--url` nor `BROKER_URL` names one: RabbitMQ's local default. */
export const DEFAULT_BROKER_URL = 'amqp://guest:guest@127.0.0.1:5672';

/**
 * The backend for `target.url`: by the library's one URL map (`backendFromUrl`), or by `factories`
 * when given; a {@link CliUsageError} naming the supported schemes for any other. Not connected yet.
 */
export function createBackend(target: BrokerTarget, factories?: BackendFactories): BrokerBackend {
  if (factories === undefined) {
    routeNestLogs(target.warn);
    try {
      return backendFromUrl(target.url, {
        namespace: target.namespace,
        connectTimeoutMs: target.connectTimeoutMs,
        connectionName: 'nest-messaging-dlq', // no space: Redis refuses one in a client name
        urlFrom: 'Broker URL',
      });
    } catch (error) {
      if (error instanceof MessagingConfigError) throw new CliUsageError(error.message);
      throw error;
    }
  }
  const scheme = urlScheme(target.url)?.toLowerCase();
  if (scheme === undefined || !Object.hasOwn(factories, scheme)) {
    const what = scheme === undefined ? 'is not a URL' : `has an unsupported scheme '${scheme}://'`;
    const supported = Object.keys(factories).map((s) => `${s}://`);
    throw new CliUsageError(
      `Broker URL '${redactCredentials(target.url)}' ${what}. Supported: ${supported.join(', ')}.`,
    );
  }
  return factories[scheme](target);
}

/**
 * Connects a backend for `target`, runs `work` on it and closes it, whether `work` succeeded,
 * failed or the connection never came up.
 */
export async function withBackend<T>(
  target: BrokerTarget,
  factories: BackendFactories | undefined,
  work: (backend: BrokerBackend) => Promise<T>,
): Promise<T> {
  const backend = createBackend(target, factories);
  try {
    await backend.connect();
    return await work(backend);
  } finally {
    await backend.close().catch((error: unknown) => {
      target.warn(
        `warning: closing the broker connection failed: ${redactCredentials(String(error))}`,
      );
    });
  }
}

/**
 * The backends log through Nest's `Logger`, which writes to stdout: that would break `--json`. A
 * command line prints what it did itself, so their lifecycle lines are dropped and their warnings and
 * errors go to stderr (already without credentials).
 */
function routeNestLogs(warn: (line: string) => void): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Logger } = require('@nestjs/common') as typeof import('@nestjs/common');
  const to =
    (level: string) =>
    (message: unknown, ...rest: unknown[]): void => {
      const context = rest.at(-1);
      warn(`${level}: ${typeof context === 'string' ? `[${context}] ` : ''}${String(message)}`);
    };
  const drop = (): void => undefined;
  Logger.overrideLogger({
    log: drop,
    debug: drop,
    verbose: drop,
    warn: to('warning'),
    error: to('error'),
    fatal: to('error'),
  });
}
