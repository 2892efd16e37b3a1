import { runBackendContract } from '../../testing';
import { runForeignIdContract } from '../../testing/foreign-id-contract';
import {
  deleteRedisPrefix,
  REDIS_URL,
  redisClient,
  uniqueRedisPrefix,
} from '../../testing/redis.fixture';
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

// A foreign entry is known by its stream and entry id.
runForeignIdContract(
  'redis',
  () => new RedisStreamsBackend({ url: REDIS_URL, prefix: PREFIX, blockMs: 200 }),
  {
    servicePrefix: `redis-${PREFIX}`,
    identicalMessagesShareId: false,
    foreignProducer: () => {
      const redis = redisClient();
      return Promise.resolve({
        // XADD <prefix>:t:<topic> * body ..., as redis-cli would: no message-id field.
        publish: async (topic, body) => {
          await redis.xadd(`${PREFIX}:t:${topic}`, '*', 'body', body);
        },
        close: async () => {
          await redis.quit();
        },
      });
    },
  },
);

afterAll(async () => {
  await deleteRedisPrefix(PREFIX);
}, 30_000);
