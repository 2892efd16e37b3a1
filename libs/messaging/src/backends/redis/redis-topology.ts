/**
 * Redis keys of {@link RedisStreamsBackend}: what exists, and why. With `prefix = 'messaging'`:
 *
 * | Key                                   | Type            | Role                                                            |
 * | ------------------------------------- | --------------- | --------------------------------------------------------------- |
 * | `messaging:t:<topic>`                 | stream          | one per topic; a consumer group per queue bound to the topic     |
 * | `messaging:q:<queue>`                 | stream          | one per queue (`<service>.<route>`): direct sends, retries, replays, requeues; group `<queue>` |
 * | `messaging:q:<service>.dead-letter`   | stream, no group | the service's dead letters, oldest first; id = entry id        |
 * | `messaging:r:<queue>`                 | stream          | retries, requeues, replays of external queue `<queue>`; group `<queue>` |
 * | `messaging:topics`                    | set             | every topic published or subscribed: wildcards resolve against it |
 * | `messaging:bindings`                  | hash            | queue → JSON array of its topic patterns (routing, `mandatory`)  |
 * | `messaging:routing`                   | string          | generation of `bindings`: a new random token when a binding is added or changed |
 * | `messaging:lease:<queue>`             | string          | exclusive queue `<queue>`: the consumer name of the one instance reading it, expiring (`redis-lease.ts`) |
 * | `messaging:rq:<queue>`                | list            | volatile requests to route `<queue>` not taken yet; expires once they all timed out |
 * | `messaging:rq:<db>:<queue>`           | pub/sub channel | its subscribers: the instances consuming route `<queue>` of database `<db>` now; a request to the only one, or a ring |
 * | `messaging:delayed`                   | sorted set      | delayed messages and retries by due time (epoch ms)              |
 * | `messaging:delayed:<uuid>`            | hash            | one delayed message: its entry fields plus `_to` (`t:<topic>`, `q:<queue>` or `r:<queue>`) |
 * | `messaging:reply:<instance>:<id>`     | pub/sub channel | the reply to one request of one backend instance                 |
 * | `messaging:dataset`                   | string          | a random token, written at connect if missing: gone after a reconnection, Redis lost the data (`redis-persistence.ts`) |
 *
 * Consumer groups are named after the queue, so every instance of a service shares one group per
 * stream (competing consumers) and every service has its own (fan-out). Consumers are named per
 * backend instance (`<host>-<pid>-<random>`).
 *
 * Routing happens in Lua (`redis-scripts.ts`), atomically with the bindings: a subscription stores its
 * patterns in `bindings` and creates its group (`$`) on every known topic that matches; the first
 * publish of a topic adds it to `topics` and creates a group (`0`, before the entry is added) for every
 * binding that matches. So a wildcard subscription misses nothing published after it, and a publish
 * that reaches no group is known at once: `UnroutableError` in any process. A publisher runs the
 * script only for a target it does not know; once the script added a message to a target, the next
 * ones are one `XADD … NOMKSTREAM` each, rechecked by the script every second (`RedisRoutes` gives the
 * race analysis). A subscription reads the streams of the topics it matches (learning new ones within
 * `blockMs`) plus its queue stream.
 *
 * Settlement: a handled delivery is acknowledged with the others settled in the same turn of the
 * event loop, one `XACK` per stream (`RedisAcks`; on a queue stream of ours a script that also
 * `XDEL`s them, since its group is its only reader). A retry copy (`XADD` to the queue stream, or the
 * `delayed` hash + `ZADD` when it has a delay), a dead letter (`XADD` to the dead-letter stream) or a
 * requeue is written by one script that acknowledges the original after the write, so a write that
 * fails leaves the original pending. A retry therefore reaches the failing queue only; an external
 * queue's stream is foreign (other groups may read it), so its retries, requeues and replays go to
 * `r:<queue>`, which it also reads. Every instance polls `delayed` every `delayPollMs` with a Lua
 * script that moves due messages to their stream: a delay survives the crash of every instance. A
 * delivery left pending by a crashed consumer is claimed with `XAUTOCLAIM` after `claimIdleMs` by any
 * instance of the service; a live handler renews its claim meanwhile (`XCLAIM … JUSTID`), and one
 * claimed more than `deliveryLimit` times is dead-lettered unhandled. Dead letters are read with
 * `XRANGE` a page at a time; a replay (Lua) deletes one and adds it to its queue's stream in one step.
 *
 * Requests: a durable one (or one to a named queue) is an entry of its target's stream, like an
 * event. A volatile one (the default) is never a stream entry: each instance of a route on a queue of
 * ours subscribes to the channel `rq:<db>:<queue>` while the route lasts, so the channel's subscribers
 * are the instances consuming the route now (channels are the whole server's, not a database's: the
 * database in the name keeps apps that share a prefix in two databases apart). A request script checks the requester's cached bindings
 * against `routing`, then, for each route they match, counts those subscribers (`PUBSUB NUMSUB`):
 * one, the request is published to it there; several, it is pushed to the list `rq:<queue>` and the
 * channel rung, and the instances pop it from there as they have free slots (competing consumers; an
 * instance without a free slot gives what it was sent back to the list). No route reached:
 * `UnroutableError` at once. Replies go to the requester's channel under `reply:<instance>:`, which it
 * subscribes to by pattern.
 *
 * Limits: a publish is as durable as Redis's persistence (`appendonly`); topic streams are trimmed to
 * about `maxLength` entries (`MAXLEN ~`), so a group that falls that far behind loses the oldest
 * (queue and dead-letter streams hold only what is unhandled and are never trimmed); groups and
 * bindings of a retired service stay until deleted (a publisher sees a group destroyed by hand within
 * a second); on a Redis Cluster every key of a prefix is in one hash slot (the prefix carries a hash
 * tag, `{shop}`: `redis-cluster.ts`), so one prefix lives on one master; a subscription
 * holds one connection (its blocking reads), and each instance one pub/sub connection (its volatile
 * routes and its replies); replies are pub/sub (a requester disconnected when its reply is sent times
 * out); a volatile request taken by an instance that crashes before answering times out, as does one
 * popped by a `RPOP` whose reply a dropped connection lost; anything else subscribed to an `rq:`
 * channel counts as an instance of its route. ioredis sends again, after a reconnection, a command
 * whose reply the dropped connection lost: a publish may then be added twice (same message id), a
 * volatile request or a give-back handled twice; a settle script checks that its original is still
 * pending, so a retry or dead-letter copy is not written twice. `docs/backends.md` says more.
 */

import { keySlot } from './redis-cluster';

/** Key names of one prefix, and the names of its pub/sub channels in database `db`. */
export class RedisKeys {
  /**
   * A key name of the prefix's hash slot (the prefix itself): passed as `KEYS[1]` of every script, so
   * that a Redis Cluster runs it on the slot's master; declared and unused on a single server.
   */
  readonly slotKey: string;
  /** The hash slot of every key of the prefix on a cluster (its prefix carries a hash tag). */
  readonly slot: number;

  /**
   * @param db the database the keys are in: pub/sub channels are the whole server's, so a channel
   *   that stands for something in one database names it (apps that share a prefix in two databases
   *   never count or reach each other's instances).
   */
  constructor(
    readonly prefix: string,
    readonly db = 0,
    /** On a Redis Cluster: the route channels are sharded channels (`SSUBSCRIBE`, `SPUBLISH`). */
    readonly sharded = false,
  ) {
    this.slotKey = prefix;
    this.slot = keySlot(prefix);
  }

  /** The stream of `topic`. */
  topic(topic: string): string {
    return `${this.prefix}:t:${topic}`;
  }

  /** The stream of queue `queue` (also of a dead-letter queue). */
  queue(queue: string): string {
    return `${this.prefix}:q:${queue}`;
  }

  /**
   * The stream of retries and requeues of external queue `queue`: the queue's own stream is
   * foreign (other consumer groups read it), so these copies go here, read by the same group.
   */
  externalRetries(queue: string): string {
    return `${this.prefix}:r:${queue}`;
  }

  /** The set of known topics. */
  get topics(): string {
    return `${this.prefix}:topics`;
  }

  /** The hash of queue → patterns. */
  get bindings(): string {
    return `${this.prefix}:bindings`;
  }

  /** The routing generation: a new random token when a binding is added or changed. */
  get routing(): string {
    return `${this.prefix}:routing`;
  }

  /** The lease of exclusive queue `queue`: who reads it now (`redis-lease.ts`). */
  lease(queue: string): string {
    return `${this.prefix}:lease:${queue}`;
  }

  /** The list of volatile requests of queue `queue` not taken yet. */
  requests(queue: string): string {
    return `${this.prefix}:rq:${queue}`;
  }

  /** The channel the instances consuming queue `queue` now listen to (see {@link RedisKeys.db}). */
  requestChannel(queue: string): string {
    return `${this.prefix}:rq:${this.db}:${queue}`;
  }

  /** The sorted set of delayed messages. */
  get delayed(): string {
    return `${this.prefix}:delayed`;
  }

  /** The hash of one delayed message. */
  delayedMessage(id: string): string {
    return `${this.prefix}:delayed:${id}`;
  }

  /** The dataset marker: a token that disappears with the data (see `redis-persistence.ts`). */
  get dataset(): string {
    return `${this.prefix}:dataset`;
  }

  /** The reply channels of one backend instance start with this. */
  replyPrefix(instance: string): string {
    return `${this.prefix}:reply:${instance}:`;
  }

  /** Any reply channel of this prefix starts with this. */
  get anyReplyPrefix(): string {
    return `${this.prefix}:reply:`;
  }
}
