/**
 * The Lua scripts of {@link RedisStreamsBackend} that change routing or move messages between keys:
 * routing on a cache miss (publish, delay, bind), moving due delayed messages, replaying and purging
 * dead letters. Each runs atomically, so routing and bindings never race between processes. The
 * scripts of the per-message paths (settling a failure, acknowledging queue entries, volatile
 * requests) are in `redis-message-scripts.ts`. Keys are described in `redis-topology.ts`; every script
 * takes the key prefix as `ARGV[1]` and computes its keys, all in the prefix's hash slot on a Redis
 * Cluster; every call names a key of that slot as `KEYS[1]` (`RedisKeys.slotKey`) so that a cluster runs
 * it on the slot's master (`redis-cluster.ts`).
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/** A Lua script and its SHA1, computed once. */
export class LuaScript {
  readonly sha: string;

  constructor(readonly text: string) {
    this.sha = createHash('sha1').update(text).digest('hex');
  }
}

/**
 * Runs `script` by its SHA1 (`EVALSHA`), sending its text (`EVAL`, which caches it) only when Redis
 * does not know it yet: after a restart, or the first time. That `EVAL` leaves after the `NOSCRIPT`
 * reply, behind the commands sent meanwhile: for a script whose order against them matters, use
 * {@link evalScript}.
 */
export function runScript(
  redis: Redis,
  script: LuaScript,
  numKeys: number,
  ...args: Array<string | Buffer | number>
): Promise<unknown> {
  return redis.evalsha(script.sha, numKeys, ...args).catch((error: unknown) => {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
    return redis.eval(script.text, numKeys, ...args);
  });
}

/**
 * Runs `script` by its text (`EVAL`): it runs where it was sent among the connection's commands,
 * whether or not Redis knew the script (after a restart that kept the data, a failover, a
 * `SCRIPT FLUSH`). For the publisher's routing script, whose message must land before the fast
 * `XADD`s of the messages published after it; its text is sent each time (Redis hashes it to find
 * the compiled script: a few µs, on a publish that runs the whole routing script anyway).
 */
export function evalScript(
  redis: Redis,
  script: LuaScript,
  numKeys: number,
  ...args: Array<string | Buffer | number>
): Promise<unknown> {
  return redis.eval(script.text, numKeys, ...args);
}

/** AMQP-style topic matching (`topic-matcher.ts` in Lua) and the routing helpers. */
export const PRELUDE = `
local function words(s)
  local t, i = {}, 1
  while true do
    local j = string.find(s, '.', i, true)
    if not j then t[#t + 1] = string.sub(s, i); return t end
    t[#t + 1] = string.sub(s, i, j - 1)
    i = j + 1
  end
end
local function match_words(p, pi, t, ti)
  while pi <= #p do
    local w = p[pi]
    if w == '#' then
      if pi == #p then return true end
      for skip = ti, #t + 1 do
        if match_words(p, pi + 1, t, skip) then return true end
      end
      return false
    end
    if ti > #t then return false end
    if w ~= '*' and w ~= t[ti] then return false end
    pi = pi + 1
    ti = ti + 1
  end
  return ti == #t + 1
end
local function matches(pattern, topic)
  if pattern == topic or pattern == '#' then return true end
  if not string.find(pattern, '[*#]') then return false end
  return match_words(words(pattern), 1, words(topic), 1)
end
local function group_count(stream)
  if redis.call('EXISTS', stream) == 0 then return 0 end
  return #redis.call('XINFO', 'GROUPS', stream)
end
local function bound_queues(prefix, topic)
  local out = {}
  local b = redis.call('HGETALL', prefix .. ':bindings')
  for i = 1, #b, 2 do
    local ok, pats = pcall(cjson.decode, b[i + 1])
    if ok and type(pats) == 'table' then
      for _, p in ipairs(pats) do
        if matches(p, topic) then out[#out + 1] = b[i]; break end
      end
    end
  end
  return out
end
-- The stream of topic, with a group for every queue bound to it once the topic is known.
local function prepare_topic(prefix, topic)
  local stream = prefix .. ':t:' .. topic
  if redis.call('SADD', prefix .. ':topics', topic) == 1 then
    for _, q in ipairs(bound_queues(prefix, topic)) do
      redis.pcall('XGROUP', 'CREATE', stream, q, '0', 'MKSTREAM')
    end
  end
  return stream
end
-- How many queues a message to (kind, name) reaches now, without changing anything.
local function route_count(prefix, kind, name)
  if kind == 'q' then return group_count(prefix .. ':q:' .. name) end
  if redis.call('SISMEMBER', prefix .. ':topics', name) == 1 then
    return group_count(prefix .. ':t:' .. name)
  end
  return #bound_queues(prefix, name)
end
-- To a topic stream: trimmed to about maxlen entries.
local function add(stream, maxlen, fields)
  return redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(fields))
end
-- To a queue stream (or an external queue's retry stream): never trimmed, since what stays there is
-- unhandled (a handled entry is deleted).
local function append(stream, fields)
  return redis.call('XADD', stream, '*', unpack(fields))
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function tail(from)
  local out = {}
  for i = from, #ARGV do out[#out + 1] = ARGV[i] end
  return out
end
`;

/**
 * Publishes when the publisher does not know the target to be routable (`RedisRoutes`: a topic or
 * queue not published to lately, or whose stream is gone): ARGV prefix, kind (`t` topic or `q`
 * queue), name, maxLength (topics only: a queue stream is never trimmed), mandatory (`1`/`0`), then
 * the entry's field/value pairs. Returns 1 when added, 0 when no queue receives it (a topic message
 * is then dropped; a queue message is kept for its future consumer unless mandatory).
 */
export const PUBLISH_SCRIPT = new LuaScript(`${PRELUDE}
local prefix, kind, name, maxlen, mandatory = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local fields = tail(6)
if kind == 'q' then
  local stream = prefix .. ':q:' .. name
  if group_count(stream) == 0 and mandatory == '1' then return 0 end
  append(stream, fields)
  return 1
end
local stream = prepare_topic(prefix, name)
if group_count(stream) == 0 then return 0 end
add(stream, maxlen, fields)
return 1
`);

/**
 * Holds a message for a delay: ARGV prefix, kind (`t`, `q`, or `r`: an external queue's retry
 * stream), name, mandatory, delayMs, id, then the field/value
 * pairs. Due times are Redis's clock (`TIME`), so the hosts' clocks never matter. Returns 0 (and holds
 * nothing) when mandatory and no queue receives it now.
 */
export const DELAY_SCRIPT = new LuaScript(`${PRELUDE}
local prefix, kind, name, mandatory, delay, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if mandatory == '1' and route_count(prefix, kind, name) == 0 then return 0 end
local fields = tail(7)
fields[#fields + 1] = '_to'
fields[#fields + 1] = kind .. ':' .. name
redis.call('HSET', prefix .. ':delayed:' .. id, unpack(fields))
redis.call('ZADD', prefix .. ':delayed', now_ms() + tonumber(delay), id)
return 1
`);

/**
 * Moves due delayed messages into their streams: ARGV prefix, limit, maxLength (topic streams only).
 * Returns how many it took off the delayed set (a topic nobody consumes any more drops its message).
 */
export const MOVE_DUE_SCRIPT = new LuaScript(`${PRELUDE}
local prefix, limit, maxlen = ARGV[1], ARGV[2], ARGV[3]
local set = prefix .. ':delayed'
local ids = redis.call('ZRANGEBYSCORE', set, '-inf', now_ms(), 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local key = prefix .. ':delayed:' .. id
  local raw = redis.call('HGETALL', key)
  local to, fields = nil, {}
  for i = 1, #raw, 2 do
    if raw[i] == '_to' then to = raw[i + 1]
    else fields[#fields + 1] = raw[i]; fields[#fields + 1] = raw[i + 1] end
  end
  if to and #fields > 0 then
    local kind, name = string.sub(to, 1, 1), string.sub(to, 3)
    if kind == 'q' then
      append(prefix .. ':q:' .. name, fields)
    elseif kind == 'r' then
      append(prefix .. ':r:' .. name, fields)
    else
      local stream = prepare_topic(prefix, name)
      if group_count(stream) > 0 then add(stream, maxlen, fields) end
    end
  end
  redis.call('DEL', key)
  redis.call('ZREM', set, id)
end
return #ids
`);

/**
 * Declares a subscription: ARGV prefix, queue, JSON array of patterns, a token unique to this call.
 * Stores the binding (and, when it is new or changed, sets the routing generation `<prefix>:routing`
 * to the token: the requesters' cached bindings are checked against it; a token rather than a
 * counter, which would start again from 0 after Redis lost its data and meet a generation cached
 * before), makes literal topics known, creates the queue's group (`$`) on every known topic it
 * matches and on its queue stream (`0`: what waits there is for it). Returns the matching topics.
 */
export const BIND_SCRIPT = new LuaScript(`${PRELUDE}
local prefix, queue, json, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local pats = cjson.decode(json)
if #pats > 0 then
  if redis.call('HGET', prefix .. ':bindings', queue) ~= json then
    redis.call('HSET', prefix .. ':bindings', queue, json)
    redis.call('SET', prefix .. ':routing', token)
  end
  -- A literal topic becomes known now, with a group for every binding that matches it (this one too).
  for _, p in ipairs(pats) do
    if not string.find(p, '[*#]') then prepare_topic(prefix, p) end
  end
end
local out = {}
if #pats > 0 then
  for _, t in ipairs(redis.call('SMEMBERS', prefix .. ':topics')) do
    for _, p in ipairs(pats) do
      if matches(p, t) then
        redis.pcall('XGROUP', 'CREATE', prefix .. ':t:' .. t, queue, '$', 'MKSTREAM')
        out[#out + 1] = t
        break
      end
    end
  end
end
redis.pcall('XGROUP', 'CREATE', prefix .. ':q:' .. queue, queue, '0', 'MKSTREAM')
return out
`);

/**
 * Replays one dead letter: ARGV prefix, dead-letter stream, entry id, queue, maxLength (unused: queue
 * streams are never trimmed), then the replayed entry's field/value pairs. An external queue's
 * replay goes to its retry stream (`<prefix>:r:<queue>`). Returns 1 when replayed, 0 when there is no such dead letter,
 * -1 when its queue has no consumer group any more (it stays).
 */
export const REPLAY_SCRIPT = new LuaScript(`${PRELUDE}
local prefix, dlq, id, queue, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local stream = prefix .. ':q:' .. queue
-- An external queue's replays go to its retry stream: the foreign stream's other groups never see them.
if redis.call('EXISTS', prefix .. ':r:' .. queue) == 1 then stream = prefix .. ':r:' .. queue end
if #redis.call('XRANGE', dlq, id, id) == 0 then return 0 end
if group_count(stream) == 0 then return -1 end
redis.call('XDEL', dlq, id)
append(stream, tail(6))
return 1
`);

/** Deletes a dead-letter stream: returns how many dead letters it held. */
export const PURGE_SCRIPT = new LuaScript(`
local n = 0
if redis.call('EXISTS', KEYS[1]) == 1 then n = redis.call('XLEN', KEYS[1]) end
redis.call('DEL', KEYS[1])
return n
`);

/**
 * Deletes the entries ARGV of the dead-letter stream KEYS[1]: returns the ids it deleted (not one
 * that a replay or another purge deleted first).
 */
export const PURGE_IDS_SCRIPT = new LuaScript(`
local purged = {}
for _, id in ipairs(ARGV) do
  if redis.call('XDEL', KEYS[1], id) == 1 then purged[#purged + 1] = id end
end
return purged
`);

/** `matches(pattern, topic)` of the scripts, alone: ARGV pattern, topic; 1 or 0. For parity tests. */
export const TOPIC_MATCH_SCRIPT = new LuaScript(`${PRELUDE}
return matches(ARGV[1], ARGV[2]) and 1 or 0
`);
