/**
 * The Redis Streams and NATS JetStream backends of the fault suite, built the same way in the test
 * (producer, checker) and in the consumer child processes, from a JSON-safe description that the
 * child receives in its `ConsumerConfig.backend`:
 *
 * | kind    | backend                 | options set here, and why                                                  |
 * | ------- | ----------------------- | -------------------------------------------------------------------------- |
 * | `redis` | `RedisStreamsBackend`   | `prefix` of the run (in a hash tag, `{...}`, on a Redis Cluster); the scenario's `claimIdleMs` (how soon a killed consumer's deliveries come back) |
 * | `nats`  | `NatsBackend`           | `prefix` of the run; the scenario's `ackWaitMs` (the same, for JetStream)  |
 *
 * Without a `backend`, a consumer child is the RabbitMQ one it always was.
 */
import type { BrokerBackend } from '@app/messaging';
import { type NatsBackendOptions, NatsBackend } from '@app/messaging/nats';
import { type RedisStreamsBackendOptions, RedisStreamsBackend } from '@app/messaging/redis';

export type StreamBackendSpec =
  | { kind: 'redis'; options: RedisStreamsBackendOptions }
  | { kind: 'nats'; options: NatsBackendOptions };

/** A fresh backend for `spec`, its connections named `name` (as the server lists them). */
export function createStreamBackend(spec: StreamBackendSpec, name: string): BrokerBackend {
  return spec.kind === 'redis'
    ? new RedisStreamsBackend({ ...spec.options, connectionName: name })
    : new NatsBackend({ ...spec.options, name });
}

/** `spec` with the key or subject prefix `prefix` (each run has its own). */
export function withPrefix(spec: StreamBackendSpec, prefix: string): StreamBackendSpec {
  return spec.kind === 'redis'
    ? {
        kind: 'redis',
        // On a cluster every key of the prefix must hash to one slot.
        options: { ...spec.options, prefix: spec.options.cluster ? `{${prefix}}` : prefix },
      }
    : { kind: 'nats', options: { ...spec.options, prefix } };
}

/** `spec` pointed at another server URL (the chaos proxy, or straight at the server). */
export function withServer(spec: StreamBackendSpec, url: string): StreamBackendSpec {
  return spec.kind === 'redis'
    ? { kind: 'redis', options: { ...spec.options, url } }
    : { kind: 'nats', options: { ...spec.options, servers: url } };
}
