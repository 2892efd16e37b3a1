import { runBackendContract } from '../../backend';
import { deleteRedisPrefix, REDIS_URL, uniqueRedisPrefix } from '../../testing/redis.fixture';
import { RedisStreamsBackend } from './index';

const PREFIX = uniqueRedisPrefix('contract');

runBackendContract(
  'redis',
  // Short claim and block times keep the suite fast; the defaults are for production.
  () => new RedisStreamsBackend({ url: REDIS_URL, prefix: PREFIX, blockMs: 200 }),
  { servicePrefix: `redis-${PREFIX}` },
);

afterAll(async () => {
  await deleteRedisPrefix(PREFIX);
}, 30_000);
