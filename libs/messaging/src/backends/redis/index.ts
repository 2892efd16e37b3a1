/** `nest-messaging/redis`: the Redis Streams backend. `ioredis` is loaded when `RedisStreamsBackend` is constructed. */
export { RedisStreamsBackend } from './redis.backend';
export type {
  RedisClusterOptions,
  RedisStreamsBackendOptions,
  RedisWaitForReplicas,
} from './redis-backend.options';
export type { RedisTlsOptions } from './redis-tls';
