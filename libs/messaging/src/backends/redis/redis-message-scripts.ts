/**
 * The Lua scripts of the per-message paths of {@link RedisStreamsBackend}: settling a failed delivery
 * (its copy, then its acknowledgement), acknowledging and deleting handled entries of a queue stream,
 * and sending a volatile request. They are short and use no helper of `redis-scripts.ts` (whose
 * routing prelude would be rebuilt at each call). Keys are described in `redis-topology.ts`; like the
 * others, they compute their keys from the prefix, all in the prefix's hash slot on a Redis Cluster
 * (`redis-cluster.ts`), where the request scripts use sharded channels (`*_SHARDED`).
 */
import { LuaScript } from './redis-scripts';

/**
 * Settles a delivery with a copy of it, in one step: writes the copy, then acknowledges the original
 * (and deletes it from a queue stream of ours). A write that fails raises before the acknowledgement,
 * so the original stays pending and is delivered again: a delivery is never acknowledged without its
 * copy (a `MULTI` would run the `XACK` even after a failed write, an out-of-memory one included).
 * An original that is no longer pending in its group is settled already: nothing is written, and 0
 * returned. That is the case of the script run again by ioredis after a reconnection, when its first
 * run's reply was lost (`autoResendUnfulfilledCommands`), which would otherwise write its copy twice.
 * (A volatile request has no original to check: its copy is written again in that case.)
 *
 * ARGV: prefix, stream (`''`: nothing to acknowledge, a volatile request), group, entry id, delete
 * (`1` for a queue stream of ours), mode, target, delayMs, delayed id, then the copy's field/value
 * pairs. Mode `x` adds the copy to stream `target` (never trimmed: a retry, requeue or dead letter);
 * mode `d` holds it in the delayed set for `delayMs` (Redis's clock), then to `target`, which is
 * `t:<topic>`, `q:<queue>` or `r:<queue>` as in `MOVE_DUE_SCRIPT`.
 */
export const SETTLE_SCRIPT = new LuaScript(`
local prefix, stream, group, id, del, mode, target = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if stream ~= '' then
  local ok, pending = pcall(redis.call, 'XPENDING', stream, group, id, id, 1)
  if not ok or #pending == 0 then return 0 end
end
local fields = {}
for i = 10, #ARGV do fields[#fields + 1] = ARGV[i] end
if mode == 'x' then
  redis.call('XADD', target, '*', unpack(fields))
else
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  fields[#fields + 1] = '_to'
  fields[#fields + 1] = target
  redis.call('HSET', prefix .. ':delayed:' .. ARGV[9], unpack(fields))
  redis.call('ZADD', prefix .. ':delayed', now + tonumber(ARGV[8]), ARGV[9])
end
if stream ~= '' then
  redis.call('XACK', stream, group, id)
  if del == '1' then redis.call('XDEL', stream, id) end
end
return 1
`);

/**
 * Acknowledges handled entries of a queue stream of ours and deletes them (the queue's group is its
 * only reader), atomically: an entry is never left acknowledged but undeleted. KEYS[1] the stream,
 * ARGV group then the entry ids. Returns how many were acknowledged.
 */
export const ACK_DELETE_SCRIPT = new LuaScript(`
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
return acked
`);

/**
 * The largest request entry (bytes) published to a route's only instance; larger ones go through the
 * list. What Redis has not yet written to a pub/sub connection counts against its
 * `client-output-buffer-limit pubsub` (by default 32 MB at once, or 8 MB for 60 s), past which Redis
 * drops the connection: the instance's routes and replies with it, until ioredis reconnects. A
 * popped request travels on the command connection, which has no such limit.
 */
export const MAX_DIRECT_REQUEST_BYTES = 16 * 1024;

/**
 * Sends a volatile request to the routes that consume now, atomically with the check of the caller's
 * bindings: ARGV prefix, database (the channels'), the routing generation the caller read its
 * bindings at, the request's timeout (ms), the request entry, then the queues its bindings match.
 * Returns -1 (and sends nothing) when the generation changed (bindings were added or changed since:
 * the caller reads them again), else how many routes it reached.
 *
 * A route consumes now when an instance is subscribed to its channel `<prefix>:rq:<db>:<queue>`
 * (`PUBSUB NUMSUB`; Redis drops a subscription with its connection, so a crashed or closed instance
 * is not counted; channels are the whole server's, hence the database in the name). With one
 * instance, the request is published to it there (one hop), unless it is larger than
 * {@link MAX_DIRECT_REQUEST_BYTES}. With several, or a large one, it goes into the list
 * `<prefix>:rq:<queue>`, and the channel is rung (an empty message): the instances pop the list
 * (competing consumers) on their command connection. The list expires once every request in it
 * would have timed out, so what nobody popped (its last instance crashed) does not stay.
 */
export const REQUEST_SCRIPT = new LuaScript(requestScript('NUMSUB', 'PUBLISH'));

/**
 * {@link REQUEST_SCRIPT} on a Redis Cluster: `PUBSUB NUMSUB` counts the subscribers of one node
 * only, so the route channels are sharded channels there, which live on the slot's master.
 */
export const REQUEST_SCRIPT_SHARDED = new LuaScript(requestScript('SHARDNUMSUB', 'SPUBLISH'));

function requestScript(numsub: string, publish: string): string {
  return `
local prefix, db, gen, ttl, entry = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
if (redis.call('GET', prefix .. ':routing') or '0') ~= gen then return -1 end
local reached = 0
for i = 6, #ARGV do
  local channel = prefix .. ':rq:' .. db .. ':' .. ARGV[i]
  local instances = redis.call('PUBSUB', '${numsub}', channel)[2]
  if instances == 1 and #entry <= ${MAX_DIRECT_REQUEST_BYTES} then
    redis.call('${publish}', channel, entry)
    reached = reached + 1
  elseif instances > 0 then
    local list = prefix .. ':rq:' .. ARGV[i]
    redis.call('LPUSH', list, entry)
    if redis.call('PTTL', list) < ttl then redis.call('PEXPIRE', list, ttl) end
    redis.call('${publish}', channel, '')
    reached = reached + 1
  end
end
return reached
`;
}

/**
 * Gives volatile requests an instance took but will not handle (it has no free slot, or its route was
 * cancelled) back to their route's list, where they are popped first, and rings the route's
 * instances: KEYS[1] the list, ARGV the route's channel, the time (ms) the list must last at least,
 * then the entries, oldest first.
 */
export const GIVE_BACK_SCRIPT = new LuaScript(giveBackScript('PUBLISH'));

/** {@link GIVE_BACK_SCRIPT} on a Redis Cluster: rings a sharded channel. */
export const GIVE_BACK_SCRIPT_SHARDED = new LuaScript(giveBackScript('SPUBLISH'));

function giveBackScript(publish: string): string {
  return `
for i = #ARGV, 3, -1 do redis.call('RPUSH', KEYS[1], ARGV[i]) end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
redis.call('${publish}', ARGV[1], '')
return 1
`;
}

/**
 * The bindings and the routing generation they are at, read together: ARGV prefix. Returns
 * `[generation, queue1, patterns1, queue2, patterns2, ...]`.
 */
export const BINDINGS_SCRIPT = new LuaScript(`
local out = { redis.call('GET', ARGV[1] .. ':routing') or '0' }
local b = redis.call('HGETALL', ARGV[1] .. ':bindings')
for i = 1, #b do out[#out + 1] = b[i] end
return out
`);
