import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';

/** Redis of the Redis specs. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix unique to this run (`RedisStreamsBackend` `prefix`), so runs never see each other. */
export function uniqueRedisPrefix(label = 'test'): string {
  return `${label}-${randomUUID().slice(0, 8)}`;
}

/** A plain connection to {@link REDIS_URL} for assertions; the caller quits it. */
export function redisClient(): Redis {
  return new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 3 });
}

/**
 * Deletes every key of `prefix` (`<prefix>:*`, found with `SCAN`, at most `limit` keys) in database
 * `db`, so a run leaves nothing behind; never touches another prefix. Resolves with how many keys it
 * deleted.
 */
export async function deleteRedisPrefix(prefix: string, limit = 100_000, db = 0): Promise<number> {
  if (!/^[A-Za-z0-9_.-]+$/.test(prefix)) throw new Error(`refusing to delete prefix '${prefix}'`);
  const redis = redisClient();
  let deleted = 0;
  try {
    if (db !== 0) await redis.select(db);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== '0' && deleted < limit);
  } finally {
    await redis.quit();
  }
  return deleted;
}
