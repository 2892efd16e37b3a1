/**
 * Helpers of the Redis specs that drive `RedisStreamsBackend` directly (no Nest app): backends under a
 * prefix of their own, closed after each test; subscription specs, messages and settlements.
 */
import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type {
  Delivery,
  OutgoingMessage,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { deleteRedisPrefix, REDIS_URL, uniqueRedisPrefix } from '../../testing/redis.fixture';
import { RedisStreamsBackend, type RedisStreamsBackendOptions } from './index';

/** A plain acknowledgement. */
export const ACK: Settlement = { action: 'ack' };

/** Registers the hooks of a spec file; returns its prefix and helpers. */
export function useRedisBackends(label: string) {
  const prefix = uniqueRedisPrefix(label);
  let open: RedisStreamsBackend[] = [];
  let counter = 0;

  beforeAll(() => Logger.overrideLogger(false));
  afterEach(async () => {
    const backends = open;
    open = [];
    await Promise.all(backends.map((b) => b.close()));
  });
  afterAll(async () => {
    await deleteRedisPrefix(prefix);
  }, 30_000);

  return {
    prefix,
    /** A connected backend of this spec's prefix, closed after the test. */
    async backend(options: RedisStreamsBackendOptions = {}): Promise<RedisStreamsBackend> {
      const b = new RedisStreamsBackend({ url: REDIS_URL, prefix, blockMs: 100, ...options });
      open.push(b);
      await b.connect();
      return b;
    },
    /** A service and topic unique to the test. */
    names(): { service: string; topic: string } {
      counter++;
      return { service: `svc${counter}`, topic: `t${counter}` };
    },
  };
}

/** The spec of route `<service>.route` on `topics`. */
export function routeSpec(
  service: string,
  topics: string[],
  extra: Partial<SubscriptionSpec> = {},
): SubscriptionSpec {
  return { service, queue: `${service}.route`, topics, external: false, concurrency: 5, ...extra };
}

/** A text message to `target`. */
export function textMessage(
  target: { topic: string } | { queue: string },
  body: string,
  headers: OutgoingMessage['headers'] = {},
): OutgoingMessage {
  return {
    ...target,
    body: Buffer.from(body),
    headers,
    messageId: randomUUID(),
    contentType: 'text/plain',
    timestamp: Date.now(),
  };
}

/** Answers a request with `text` (an event is just acknowledged). */
export function answer(delivery: Delivery, text: string): Settlement {
  return delivery.replyTo === undefined
    ? ACK
    : { action: 'ack', reply: { body: Buffer.from(text), headers: {} } };
}
