/**
 * Redis Cluster support of {@link RedisStreamsBackend}: every key of one prefix lives in ONE hash
 * slot (the prefix carries a hash tag, `{shop}`), so the scripts, which compute their keys from the
 * prefix, only touch keys of the node they run on, and a topic's routing never crosses slots.
 *
 * | what                | why                                                                                |
 * | ------------------- | ---------------------------------------------------------------------------------- |
 * | `hashTagOf()`       | the prefix rule: on a cluster the prefix must hold `{tag}`, checked at construction |
 * | `keySlot()`         | CRC16 of a key (or of its tag) mod 16384, as Redis computes it                     |
 * | `isCluster()`       | whether a connection is an `ioredis` `Cluster` (the backend types both as `Redis`)  |
 * | `masterOf()`        | `host:port` of a slot's master as a cluster connection knows it (the route channels' node) |
 * | `nodeFor()`         | the connection to the master of a slot, for what must reach that very node: `CLIENT ID` / `CLIENT UNBLOCK` of a blocked reader, `INFO persistence`, `WAIT` |
 *
 * What a cluster changes, and where:
 * - scripts: every call passes a key of the slot as `KEYS[1]` (`RedisKeys.slotKey`), so that ioredis
 *   sends it to the slot's master; on a single server the same key is declared and unused;
 * - volatile requests: `PUBSUB NUMSUB` counts the subscribers of one node only, so on a cluster the
 *   route channels are sharded channels (`SSUBSCRIBE`, `SPUBLISH`, `PUBSUB SHARDNUMSUB`), which live
 *   on the slot's master, held on a connection there that follows the slot (`redis-message-scripts.ts`,
 *   `redis-pubsub.ts`); replies stay plain pub/sub (the cluster bus carries a `PUBLISH` to every node);
 * - connections: `new Cluster(...)` for the command, reader and pub/sub connections
 *   (`redis-connection.ts`); the command connection's writes are not corked on a cluster.
 *
 * The limit, said plainly: one prefix lives on one master (its replicas give it availability, not
 * capacity). Services that need more than one master use different prefixes (different tags).
 */
import type { Redis } from 'ioredis';

/** Number of hash slots of a Redis Cluster. */
export const CLUSTER_SLOTS = 16384;

/**
 * The hash tag of `key` as Redis reads it: the text between the first `{` and the first `}` after
 * it, when not empty; else undefined (the whole key is hashed).
 */
export function hashTagOf(key: string): string | undefined {
  const open = key.indexOf('{');
  if (open < 0) return undefined;
  const close = key.indexOf('}', open + 1);
  if (close < 0 || close === open + 1) return undefined;
  return key.slice(open + 1, close);
}

/** The hash slot of `key` (CRC16/XMODEM of its hash tag, or of itself, mod 16384). */
export function keySlot(key: string): number {
  const hashed = Buffer.from(hashTagOf(key) ?? key);
  let crc = 0;
  for (const byte of hashed) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % CLUSTER_SLOTS;
}

/** Whether `redis` is an `ioredis` `Cluster` rather than a connection to one server. */
export function isCluster(redis: Redis): boolean {
  return redis.isCluster;
}

interface ClusterInternals {
  slots: string[][];
  connectionPool: { getInstanceByKey(nodeKey: string): Redis | undefined };
}

/** `host:port` of the master of `slot` as cluster `redis` knows it now; undefined if it does not. */
export function masterOf(redis: Redis, slot: number): string | undefined {
  if (!redis.isCluster) return undefined;
  return (redis as unknown as ClusterInternals).slots[slot]?.[0];
}

/**
 * The connection of cluster `redis` to the master of `slot` as it knows it now (`redis` itself when
 * it is no cluster, or does not know the slot's master yet). A command sent there runs on that node
 * whatever its keys, and in order with what the cluster sent there for the slot.
 */
export function nodeFor(redis: Redis, slot: number): Redis {
  if (!redis.isCluster) return redis;
  const cluster = redis as unknown as ClusterInternals;
  const master = cluster.slots[slot]?.[0];
  return (master !== undefined && cluster.connectionPool.getInstanceByKey(master)) || redis;
}
