import { Inject } from '@nestjs/common';
import { assertValidTopicPattern } from '../backend/topic-matcher';

/** Where a `MessageProducer` sends, and how. */
export interface ProducerTarget {
  /** Topic to publish to (no wildcards). */
  readonly topic?: string;
  /** Named queue to send to directly, for plain consumers in any language. */
  readonly queue?: string;
  /** Resolve a publish that no queue receives instead of rejecting with `UnroutableError`. */
  readonly allowUnroutable?: boolean;
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
  return `MessageProducer(${where}${t.allowUnroutable ? ',allowUnroutable' : ''})`;
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
 */
export function Producer(target: string | ProducerTarget): PropertyDecorator & ParameterDecorator {
  const normalized: ProducerTarget = typeof target === 'string' ? { topic: target } : { ...target };
  const where = '@Producer';
  if ((normalized.topic === undefined) === (normalized.queue === undefined)) {
    throw new TypeError(
      `${where}: give exactly one of a topic ('order.created') or { queue: 'name' }`,
    );
  }
  if (normalized.topic !== undefined) {
    assertValidTopicPattern(normalized.topic, where);
    if (/[*#]/.test(normalized.topic)) {
      throw new TypeError(
        `${where}: cannot publish to a wildcard topic '${normalized.topic}'; name one topic`,
      );
    }
  }
  if (
    normalized.queue !== undefined &&
    (typeof normalized.queue !== 'string' || normalized.queue.length === 0)
  ) {
    throw new TypeError(`${where}: queue must be a non-empty string`);
  }
  if (normalized.allowUnroutable !== undefined && typeof normalized.allowUnroutable !== 'boolean') {
    throw new TypeError(`${where}: allowUnroutable must be true or false`);
  }
  const token = getProducerToken(normalized);
  requestedTargets.set(token, normalized);
  return Inject(token);
}
