/**
 * The one map from a broker URL to its backend, for everything that picks the broker by URL (the
 * samples' `BROKER_URL`, `nest-messaging dlq --url`, any twelve-factor app):
 *
 * | scheme                  | backend               | the URL becomes |
 * | ----------------------- | --------------------- | --------------- |
 * | `amqp://`, `amqps://`   | `AmqpBackend`         | `url`           |
 * | `redis://`, `rediss://` | `RedisStreamsBackend` | `url`           |
 * | `nats://`, `tls://`     | `NatsBackend`         | `servers`       |
 *
 * A backend's module (and its client: `amqplib`, `ioredis`, the NATS packages) is loaded only when
 * its scheme is asked for, so a command line that talks to one broker loads one.
 */
import type { BrokerBackend } from '../backend/broker-backend.interface';
import { redactCredentials } from '../backend/redact-credentials';
import { MessagingConfigError } from '../errors/messaging.errors';

/** What a broker URL does not say, the same for every backend. */
export interface BackendFromUrlOptions {
  /** Keeps apps on one broker apart (the backends' `namespace`). @default 'messaging' */
  readonly namespace?: string;
  /** The connection's name, shown by the broker's own tools. */
  readonly connectionName?: string;
  /** How long to keep trying to reach the broker before failing. */
  readonly connectTimeoutMs?: number;
  /** What the URL is called in an error, such as `BROKER_URL` or `--url`. @default 'Broker URL' */
  readonly urlFrom?: string;
}

type Factory = (url: string, options: BackendFromUrlOptions) => BrokerBackend;

/* eslint-disable @typescript-eslint/no-require-imports -- a backend is loaded when its scheme is asked for */
const amqp: Factory = (url, o) => {
  const { AmqpBackend } = require('./amqp') as typeof import('./amqp');
  return new AmqpBackend({
    url,
    namespace: o.namespace,
    connectionName: o.connectionName,
    connectTimeoutMs: o.connectTimeoutMs,
  });
};
const redis: Factory = (url, o) => {
  const { RedisStreamsBackend } = require('./redis') as typeof import('./redis');
  return new RedisStreamsBackend({
    url,
    namespace: o.namespace,
    connectionName: o.connectionName,
    connectTimeoutMs: o.connectTimeoutMs,
  });
};
const nats: Factory = (url, o) => {
  const { NatsBackend } = require('./nats') as typeof import('./nats');
  return new NatsBackend({
    servers: url,
    namespace: o.namespace,
    name: o.connectionName,
    connectTimeoutMs: o.connectTimeoutMs,
  });
};
/* eslint-enable @typescript-eslint/no-require-imports */

/** The backends by URL scheme (the table above). */
const BY_SCHEME: Readonly<Record<string, Factory>> = {
  amqp,
  amqps: amqp,
  redis,
  rediss: redis,
  nats,
  tls: nats,
};

/** The URL schemes {@link backendFromUrl} takes, with their `://`. */
export const BROKER_URL_SCHEMES: readonly string[] = Object.keys(BY_SCHEME).map((s) => `${s}://`);

/** The scheme of `url` as written, without `://`; undefined when `url` is not a URL. */
export function urlScheme(url: string): string | undefined {
  return /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1];
}

/**
 * The backend a broker URL names by its scheme, not connected yet; a `MessagingConfigError` that
 * names the schemes it takes for any other (the URL shown without its credentials).
 *
 * @example
 * MessagingModule.forRoot({ service: 'orders', backend: backendFromUrl(process.env.BROKER_URL!) });
 */
export function backendFromUrl(url: string, options: BackendFromUrlOptions = {}): BrokerBackend {
  const given = urlScheme(url);
  const scheme = given?.toLowerCase();
  if (scheme === undefined || !Object.hasOwn(BY_SCHEME, scheme)) {
    throw new MessagingConfigError(
      `${options.urlFrom ?? 'Broker URL'} '${redactCredentials(url)}' ` +
        `${given === undefined ? 'is not a URL' : `has an unsupported scheme '${given}://'`}. ` +
        `The scheme picks the broker: ${BROKER_URL_SCHEMES.join(', ')}.`,
    );
  }
  return BY_SCHEME[scheme](url, options);
}
