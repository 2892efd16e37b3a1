/**
 * The lease of an exclusive subscription on Redis (`SubscriptionSpec.exclusive`, a single active
 * consumer; timing and rules in `backend/lease-keeper.ts`): Redis Streams have no such consumer, so
 * the instances of the queue take turns holding key `<prefix>:lease:<queue>`, whose value is the
 * holder's consumer name. The key is in the prefix's hash slot like every key of it, so on a Redis
 * Cluster the node of the queue's streams serves it too.
 *
 * | Step          | Command                                                          |
 * | ------------- | ---------------------------------------------------------------- |
 * | take or renew | `LEASE_SCRIPT`: `SET NX PX`, or `PEXPIRE` if the value is ours   |
 * | give back     | `RELEASE_SCRIPT`: `DEL` if the value is ours                      |
 */
import type { Redis } from 'ioredis';
import { EXCLUSIVE_LEASE_MS } from '../../backend/exclusive';
import type { LeaseStore } from '../../backend/lease-keeper';
import { LuaScript, runScript } from './redis-scripts';

/** Takes the lease if it is free or ours (and renews it): 1, or 0 when another instance holds it. */
const LEASE_SCRIPT = new LuaScript(`
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`);

/** Gives the lease back if it is ours. */
const RELEASE_SCRIPT = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

/** The lease at `key`, held under the name `holder` (this instance's consumer name). */
export function redisLease(command: Redis, key: string, holder: string): LeaseStore {
  return {
    take: async () =>
      (await runScript(command, LEASE_SCRIPT, 1, key, holder, EXCLUSIVE_LEASE_MS)) === 1,
    release: async () => {
      if (command.status !== 'ready') return; // it expires by itself
      await runScript(command, RELEASE_SCRIPT, 1, key, holder);
    },
  };
}
