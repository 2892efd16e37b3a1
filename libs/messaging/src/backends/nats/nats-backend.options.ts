import {
  checkBoolean,
  checkInteger,
  checkName,
  checkNumber,
  checkOptionsObject,
  namespaceOption,
} from '../../errors/config-checks';
import { MessagingConfigError } from '../../errors/messaging.errors';
import { resolveServers } from './nats-servers';
import { type NatsTlsOptions, resolveNatsTls, type ResolvedNatsTls } from './nats-tls';

/**
 * Options of {@link NatsBackend}.
 *
 * @example
 * new NatsBackend({ servers: 'nats://127.0.0.1:4222' });
 * new NatsBackend({ servers: ['nats://n1:4222', 'nats://n2:4222'], prefix: 'shop', replicas: 3 });
 */
export interface NatsBackendOptions {
  /**
   * NATS server URL(s); several are tried in turn on every (re)connection. `tls://` requires TLS
   * (see `tls`). Credentials may be written in a URL, `nats://user:password@host:4222` (or
   * `nats://token@host:4222`), percent-encoded or not: they are taken out of it, sent to the
   * server only, and never shown in an error or a log. All URLs carry the same ones, or none.
   * The first connection goes to one of them at random, as with any NATS client, unless
   * `randomizeServers` is false.
   * @default 'nats://127.0.0.1:4222'
   */
  readonly servers?: string | readonly string[];
  /**
   * Shuffle `servers` before the first connection, as NATS clients do, so that the instances of a
   * fleet spread over a cluster. `false` tries them in the order given: the first one first, then
   * the next one at each reconnection (a preferred server, e.g. the one in the same zone).
   * @default true
   */
  readonly randomizeServers?: boolean;
  /**
   * What keeps apps on one NATS apart: it names everything this backend creates on the server,
   * subjects `<namespace>.…` and streams `<namespace>-messages`, `<namespace>-delayed`,
   * `<namespace>-dead-letters`. Apps that exchange messages use the same namespace; apps (or test
   * runs) that must not see each other use different ones. The same option on every backend (the
   * exchange on RabbitMQ, the key prefix on Redis).
   * @default 'messaging'
   */
  readonly namespace?: string;
  /** @deprecated The older name of {@link namespace}: still works, told once per process. */
  readonly prefix?: string;
  /** Connection name shown by `nats server report connections`. */
  readonly name?: string;
  /** User name, with `pass` (or in the server URLs, not both). */
  readonly user?: string;
  /** Password of `user`. */
  readonly pass?: string;
  /** Authentication token. */
  readonly token?: string;
  /** TLS to the servers: a private CA, a client certificate, the name to verify. See {@link NatsTlsOptions}. */
  readonly tls?: NatsTlsOptions;
  /**
   * How often the client pings the server to check the link. A link that stops answering (a
   * black-holed network, a frozen server: no error, no close) is noticed after
   * `maxPingsOutstanding` to `maxPingsOutstanding + 1` intervals without a pong; then the backend
   * reports `reconnecting`, reconnects, and sends again what waits for an answer. With the defaults,
   * within 6 to 9 s: before `publishTimeoutMs`, so a publish caught by it can still be confirmed.
   * @default 3000
   */
  readonly pingIntervalMs?: number;
  /**
   * Pings without a pong after which the link counts as dead (see `pingIntervalMs`).
   * @default 2
   */
  readonly maxPingsOutstanding?: number;
  /**
   * How long `connect()` keeps trying before it rejects (later reconnections never give up).
   * @default 10000
   */
  readonly connectTimeoutMs?: number;
  /**
   * Longest time a publish takes in all: the route lookup of a mandatory one (to a topic not found
   * routed lately) and the PubAck, waiting for a reconnection when the link is down. Past it, the
   * publish rejects with `PublishTimeoutError`.
   * @default 10000
   */
  readonly publishTimeoutMs?: number;
  /**
   * JetStream `ack_wait` of the consumers: a delivery not settled (nor kept alive, which this backend
   * does while its handler runs) within it is redelivered, to any instance. A crashed instance's
   * deliveries come back after it.
   * @default 30000
   */
  readonly ackWaitMs?: number;
  /**
   * After this many deliveries of one message that never settled (crashes, lost connections; not
   * the library's retries, which are new copies) it is dead-lettered with reason `delivery-limit`
   * instead of being handled again. The backend counts: the consumers' `max_deliver` is unlimited,
   * so a delivery whose dead letter could not be written comes again.
   * @default 20
   */
  readonly deliveryLimit?: number;
  /**
   * Longest time the messages stream keeps a message nobody acknowledged, in ms (0: no limit).
   * @default 0
   */
  readonly maxAgeMs?: number;
  /**
   * Largest size of the messages stream in bytes (-1: no limit). When full, publishes are refused
   * (`discard: new`) rather than old messages dropped.
   * @default -1
   */
  readonly maxBytes?: number;
  /**
   * Most messages the messages stream holds (-1: no limit); publishes are refused beyond it.
   * @default -1
   */
  readonly maxMsgs?: number;
  /**
   * Longest time a dead letter is kept, in ms (0: until replayed or purged).
   * @default 0
   */
  readonly deadLetterMaxAgeMs?: number;
  /**
   * Replicas of each stream (a clustered JetStream allows 1 to 5).
   * @default 1
   */
  readonly replicas?: number;
  /**
   * Storage of the streams. `memory` loses every message on a server restart.
   * @default 'file'
   */
  readonly storage?: 'file' | 'memory';
  /**
   * How long a route seen on the server is trusted by the unroutable check of publishes before it
   * is read again (a missing route is always read again at once).
   * @default 5000
   */
  readonly routeCacheMs?: number;
  /**
   * Longest wait, at close, for deliveries in flight to settle.
   * @default 10000
   */
  readonly closeTimeoutMs?: number;
  /**
   * Wait for the server to confirm each acknowledgement (JetStream's "ack ack", a round trip per
   * delivery) before the delivery counts as settled. Off, a delivery is acknowledged with a plain
   * ack once its handler (and any retry copy or dead letter, always confirmed first) is done: an
   * ack lost on the wire, or in a crash right after the handler, means the message comes again
   * after `ackWaitMs`, which at-least-once allows. On, that window closes (a confirmed ack is never
   * redelivered), at the cost of a round trip per delivery (about half the throughput of a
   * consumer on a fast handler).
   * @default false
   */
  readonly confirmAcks?: boolean;
  /**
   * Volatile requests (`request()` without `durable`) a route holds in this process beyond the
   * `concurrency` its handlers run: they arrive over core NATS, which has no queue of its own, so
   * this bounds the memory a flood of requests takes (this many request bodies per route). A
   * request that finds the route that full is refused at once, never queued without limit: the
   * caller gets a `PublishBackpressureError` once every route that takes the topic refused it.
   * @default 1000
   */
  readonly maxWaitingRequests?: number;
}

/** {@link NatsBackendOptions} with every default applied, and the names derived from `prefix`. */
export interface ResolvedNatsOptions {
  readonly servers: readonly string[];
  readonly randomizeServers: boolean;
  readonly prefix: string;
  readonly name?: string;
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  /** Set when TLS is required (the `tls` option, or `tls://` servers). */
  readonly tls?: ResolvedNatsTls;
  readonly pingIntervalMs: number;
  readonly maxPingsOutstanding: number;
  readonly connectTimeoutMs: number;
  readonly publishTimeoutMs: number;
  readonly ackWaitMs: number;
  readonly deliveryLimit: number;
  readonly maxAgeMs: number;
  readonly maxBytes: number;
  readonly maxMsgs: number;
  readonly deadLetterMaxAgeMs: number;
  readonly replicas: number;
  readonly storage: 'file' | 'memory';
  readonly routeCacheMs: number;
  readonly closeTimeoutMs: number;
  readonly confirmAcks: boolean;
  readonly maxWaitingRequests: number;
}

export const DEFAULT_NATS_SERVER = 'nats://127.0.0.1:4222';
export const DEFAULT_NATS_PREFIX = 'messaging';

const KNOWN: readonly (keyof NatsBackendOptions)[] = [
  'servers',
  'randomizeServers',
  'namespace',
  'prefix',
  'name',
  'user',
  'pass',
  'token',
  'tls',
  'pingIntervalMs',
  'maxPingsOutstanding',
  'connectTimeoutMs',
  'publishTimeoutMs',
  'ackWaitMs',
  'deliveryLimit',
  'maxAgeMs',
  'maxBytes',
  'maxMsgs',
  'deadLetterMaxAgeMs',
  'replicas',
  'storage',
  'routeCacheMs',
  'closeTimeoutMs',
  'confirmAcks',
  'maxWaitingRequests',
];

const WHERE = 'new NatsBackend()';
const DAY_MS = 86_400_000;

/** Checks `options` and applies the defaults; throws a `MessagingConfigError` that names the fix. */
export function resolveNatsOptions(options: NatsBackendOptions = {}): ResolvedNatsOptions {
  checkOptionsObject(options, KNOWN, WHERE);
  const prefix =
    checkName(namespaceOption(options, 'prefix', WHERE), `${WHERE}: namespace`, 64) ??
    DEFAULT_NATS_PREFIX;
  if (!/^[A-Za-z0-9_-]+$/.test(prefix)) {
    throw new MessagingConfigError(
      `${WHERE}: namespace must be letters, digits, '_' or '-' (it names subjects and streams), got ${JSON.stringify(prefix)}`,
    );
  }
  const storage = options.storage ?? 'file';
  if (storage !== 'file' && storage !== 'memory') {
    throw new MessagingConfigError(
      `${WHERE}: storage must be 'file' or 'memory', got ${JSON.stringify(storage)}`,
    );
  }
  if ((options.user === undefined) !== (options.pass === undefined)) {
    throw new MessagingConfigError(`${WHERE}: user and pass go together; set both or neither`);
  }
  const { servers, credentials } = resolveServers(options.servers, DEFAULT_NATS_SERVER, WHERE);
  const given = options.user !== undefined || options.token !== undefined;
  if (credentials && given) {
    throw new MessagingConfigError(
      `${WHERE}: credentials are given twice, in a server URL and in user/pass or token; keep one`,
    );
  }
  return {
    servers,
    randomizeServers: checkBoolean(options.randomizeServers, true, `${WHERE}: randomizeServers`),
    prefix,
    name: checkName(options.name, `${WHERE}: name`),
    user: credentials ? credentials.user : checkName(options.user, `${WHERE}: user`),
    pass: credentials ? credentials.pass : checkSecret(options.pass, `${WHERE}: pass`),
    token: credentials ? credentials.token : checkSecret(options.token, `${WHERE}: token`),
    tls: resolveNatsTls(
      options.tls,
      servers.some((s) => /^tls:/i.test(s)),
      WHERE,
    ),
    pingIntervalMs: checkInteger(
      options.pingIntervalMs,
      3_000,
      `${WHERE}: pingIntervalMs`,
      100,
      3_600_000,
    ),
    maxPingsOutstanding: checkInteger(
      options.maxPingsOutstanding,
      2,
      `${WHERE}: maxPingsOutstanding`,
      1,
      1_000,
    ),
    connectTimeoutMs: checkInteger(
      options.connectTimeoutMs,
      10_000,
      `${WHERE}: connectTimeoutMs`,
      100,
    ),
    publishTimeoutMs: checkInteger(
      options.publishTimeoutMs,
      10_000,
      `${WHERE}: publishTimeoutMs`,
      100,
    ),
    ackWaitMs: checkInteger(options.ackWaitMs, 30_000, `${WHERE}: ackWaitMs`, 500, DAY_MS),
    deliveryLimit: checkInteger(options.deliveryLimit, 20, `${WHERE}: deliveryLimit`, 1, 10_000),
    maxAgeMs: checkInteger(options.maxAgeMs, 0, `${WHERE}: maxAgeMs`, 0),
    maxBytes: checkInteger(options.maxBytes, -1, `${WHERE}: maxBytes`, -1),
    maxMsgs: checkInteger(options.maxMsgs, -1, `${WHERE}: maxMsgs`, -1),
    deadLetterMaxAgeMs: checkInteger(
      options.deadLetterMaxAgeMs,
      0,
      `${WHERE}: deadLetterMaxAgeMs`,
      0,
    ),
    replicas: checkInteger(options.replicas, 1, `${WHERE}: replicas`, 1, 5),
    storage,
    routeCacheMs: checkNumber(options.routeCacheMs, 5_000, `${WHERE}: routeCacheMs`, 0, DAY_MS),
    closeTimeoutMs: checkInteger(options.closeTimeoutMs, 10_000, `${WHERE}: closeTimeoutMs`, 0),
    confirmAcks: checkBoolean(options.confirmAcks, false, `${WHERE}: confirmAcks`),
    maxWaitingRequests: checkInteger(
      options.maxWaitingRequests,
      1_000,
      `${WHERE}: maxWaitingRequests`,
      0,
      1_000_000,
    ),
  };
}

/** A password or token: a non-empty string of at most 4096 characters; never shown in the error. */
function checkSecret(value: unknown, where: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > 4096) {
    throw new MessagingConfigError(
      `${where} must be a non-empty string of at most 4096 characters, got ${typeof value === 'string' ? `one of ${value.length}` : typeof value}`,
    );
  }
  return value;
}
