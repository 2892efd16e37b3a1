import { Inject } from '@nestjs/common';
import { PROPERTY_DEPS_METADATA, SELF_DECLARED_DEPS_METADATA } from '@nestjs/common/constants';
import { assertValidTopicPattern } from '../backend/topic-matcher';
import { checkBoolean, checkName, checkOptionsObject } from '../errors/config-checks';
import { MessagingConfigError } from '../errors/messaging.errors';
import { checkConnectionName, DEFAULT_CONNECTION } from '../options/messaging-options';
import { type CloudEventsOptions, resolveCloudEvents } from '../codec/cloud-events';
import { checkVersion } from './message-versions';

/** Where a `MessageProducer` sends, and how. */
export interface ProducerTarget {
  /** Topic to publish to (no wildcards). */
  readonly topic?: string;
  /** Named queue to send to directly, for plain consumers in any language. */
  readonly queue?: string;
  /** Resolve a publish that no queue receives instead of rejecting with `UnroutableError`. */
  readonly allowUnroutable?: boolean;
  /**
   * The connection to publish on: the `name` of a `MessagingModule.forRoot({ name, backend, ... })`.
   * @default 'default' (the `forRoot()` without a name)
   */
  readonly connection?: string;
  /**
   * Send this producer's messages as CloudEvents (`true`, or `{ type, source, mode }` merged over the
   * module's `cloudEvents`), or not (`false`). @default the module's `cloudEvents`
   */
  readonly cloudEvents?: boolean | CloudEventsOptions;
  /**
   * The version of the messages it sends, stamped as the `x-messaging-version` header (an integer
   * from 1): handlers of another version upcast them or dead-letter them (`@Consume({ version })`).
   * `publish(..., { version })` overrides it for one message. @default none: no header (version 1)
   */
  readonly version?: number;
}

/**
 * Every target some `@Producer` asked for, keyed by injection token. `MessagingModule` provides one
 * `MessageProducer` per entry, which is what makes `@Producer` work with no other registration.
 */
const requestedTargets = new Map<string, ProducerTarget>();

/** The injection token of the `MessageProducer` for `target`. */
export function getProducerToken(target: string | ProducerTarget): string {
  const t = typeof target === 'string' ? { topic: target } : target;
  const where = t.topic !== undefined ? `topic:${t.topic}` : `queue:${t.queue}`;
  const on =
    t.connection !== undefined && t.connection !== DEFAULT_CONNECTION
      ? `,connection:${t.connection}`
      : '';
  const cloudEvents =
    t.cloudEvents !== undefined ? `,cloudEvents:${JSON.stringify(t.cloudEvents)}` : '';
  const version = t.version !== undefined ? `,v${t.version}` : '';
  return `MessageProducer(${where}${t.allowUnroutable ? ',allowUnroutable' : ''}${on}${version}${cloudEvents})`;
}

/**
 * The `@Producer` targets `type` injects (by constructor parameter or property), with their tokens:
 * what a class of an app sends, whatever other classes of the process asked for.
 */
export function injectedProducers(type: object): [token: string, target: ProducerTarget][] {
  const parameters = (Reflect.getMetadata(SELF_DECLARED_DEPS_METADATA, type) ?? []) as {
    param: unknown;
  }[];
  const properties = (Reflect.getMetadata(PROPERTY_DEPS_METADATA, type) ?? []) as {
    type: unknown;
  }[];
  const found: [string, ProducerTarget][] = [];
  for (const token of [...parameters.map((p) => p.param), ...properties.map((p) => p.type)]) {
    const target = typeof token === 'string' ? requestedTargets.get(token) : undefined;
    if (target) found.push([token as string, target]);
  }
  return found;
}

/** The targets requested so far, for the module's providers. */
export function getRequestedProducerTargets(): ReadonlyMap<string, ProducerTarget> {
  return requestedTargets;
}

/**
 * Injects a `MessageProducer<T>` bound to a topic (or to a named queue), with no other registration.
 *
 * @example
 * constructor(@Producer('order.created') private readonly orderCreated: MessageProducer<OrderCreated>) {}
 * // ...
 * await this.orderCreated.publish({ id, amount }); // resolves once the broker confirmed it
 *
 * @Producer({ queue: 'hello' }) private readonly hello: MessageProducer<string>;
 *
 * // Every message carries x-messaging-version: 2 (see @Consume's version and upcast).
 * @Producer({ topic: 'order.created', version: 2 }) private readonly orders: MessageProducer<OrderCreatedV2>;
 */
export function Producer(target: string | ProducerTarget): PropertyDecorator & ParameterDecorator {
  const normalized = checkProducerTarget(typeof target === 'string' ? { topic: target } : target);
  const token = getProducerToken(normalized);
  requestedTargets.set(token, normalized);
  return Inject(token);
}

const TARGET_KEYS: readonly (keyof ProducerTarget)[] = [
  'topic',
  'queue',
  'allowUnroutable',
  'connection',
  'cloudEvents',
  'version',
];

function checkProducerTarget(target: ProducerTarget): ProducerTarget {
  const where = '@Producer';
  checkOptionsObject(target, TARGET_KEYS, where);
  if ((target?.topic === undefined) === (target?.queue === undefined)) {
    throw new MessagingConfigError(
      `${where}: give exactly one of a topic ('order.created') or { queue: 'name' }`,
    );
  }
  if (target.topic !== undefined) checkTopic(target.topic, where);
  checkName(target.queue, `${where}: queue`);
  checkBoolean(target.allowUnroutable, false, `${where}: allowUnroutable`);
  checkConnectionName(target.connection, `${where}: connection`);
  // Checked here, at the decorator; merged over the module's settings by the publisher.
  resolveCloudEvents(target.cloudEvents, { service: 'unknown' }, `${where}: cloudEvents`);
  checkVersion(target.version, `${where}: version`);
  return { ...target };
}

function checkTopic(topic: string, where: string): void {
  assertValidTopicPattern(topic, where);
  if (/[*#]/.test(topic)) {
    throw new MessagingConfigError(
      `${where}: cannot publish to a wildcard topic '${topic}'; name one topic`,
    );
  }
}
