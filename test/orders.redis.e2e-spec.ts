import { RedisStreamsBackend } from '@app/messaging';
import {
  deleteRedisPrefix,
  REDIS_URL,
  uniqueRedisPrefix,
} from '../libs/messaging/src/testing/redis.fixture';
import { describeOrdersOnBroker } from './support/orders-on-broker';

/** The sample services on Redis Streams; every key this run makes starts with its prefix. */
const namespace = uniqueRedisPrefix('oe2e');

describeOrdersOnBroker({
  name: 'Redis Streams',
  url: REDIS_URL,
  namespace,
  backend: () => new RedisStreamsBackend({ url: REDIS_URL, prefix: namespace }),
  cleanup: async () => {
    await deleteRedisPrefix(namespace);
  },
});
