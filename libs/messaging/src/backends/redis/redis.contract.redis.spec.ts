import { runBackendContract } from '../../testing';
import { deleteRedisPrefix, REDIS_URL, uniqueRedisPrefix } from '../../testing/redis.fixture';
import { redisProxy } from './redis-proxy.fixture';
import { RedisStreamsBackend } from './index';

const PREFIX = uniqueRedisPrefix('contract');

runBackendContract(
  'redis',
  // Short claim and block times keep the suite fast; the defaults are for production.
  () => new RedisStreamsBackend({ url: REDIS_URL, prefix: PREFIX, blockMs: 200 }),
  {
    servicePrefix: `redis-${PREFIX}`,
    exclusive: {
      // Redis keeps no kind of consumer with a stream: an exclusive queue is one with a lease.
      refusesMismatch: false,
      // A process that dies stops renewing its lease: one cut off from Redis does too.
      crashable: async () => {
        const proxy = await redisProxy();
        const url = `redis://127.0.0.1:${proxy.port}`;
        // Closed after the test with Redis gone: no use waiting for its settlements.
        const backend = new RedisStreamsBackend({
          url,
          prefix: PREFIX,
          blockMs: 200,
          closeTimeoutMs: 500,
        });
        return { backend, crash: () => proxy.cut(), dispose: () => proxy.stop() };
      },
    },
  },
);

afterAll(async () => {
  await deleteRedisPrefix(PREFIX);
}, 30_000);
