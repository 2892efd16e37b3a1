import { RedisStreamsBackend } from '../backends/redis';
import { deleteRedisPrefix, REDIS_URL, uniqueRedisPrefix } from '../testing/redis.fixture';
import { describeDlqOnBroker } from './dlq-broker.fixture';

const namespace = uniqueRedisPrefix('cli');

describeDlqOnBroker({
  name: 'Redis Streams',
  url: REDIS_URL,
  namespace,
  backend: () => new RedisStreamsBackend({ url: REDIS_URL, prefix: namespace }),
  cleanup: async () => {
    await deleteRedisPrefix(namespace);
  },
});
