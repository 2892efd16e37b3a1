import { RedisStreamsBackend } from '@app/messaging';
import {
  deleteRedisPrefix,
  REDIS_URL,
  uniqueRedisPrefix,
} from '../libs/messaging/src/testing/redis.fixture';
import { describeSeveralConnections } from './support/several-connections';

const prefix = uniqueRedisPrefix('ce2e');

describeSeveralConnections({
  name: 'Redis Streams',
  run: 'ce2e',
  backend: () => new RedisStreamsBackend({ url: REDIS_URL, prefix }),
  cleanup: () => deleteRedisPrefix(prefix),
});
