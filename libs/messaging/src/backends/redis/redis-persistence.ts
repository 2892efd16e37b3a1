/**
 * Whether Redis keeps this backend's messages across its own restart, said loudly: a publish is
 * confirmed once Redis holds the entry in memory, so a Redis that persists nothing loses every
 * confirmed message when it restarts, and one that only snapshots loses what came after the last
 * snapshot. Nothing else would show it: after such a restart the streams and groups are declared
 * again and the loss is a `NOGROUP` reply at most.
 *
 * | When                                | What is checked                                   | Said                                   |
 * | ----------------------------------- | ------------------------------------------------- | -------------------------------------- |
 * | `connect()`                         | `INFO persistence` (`aof_enabled`), `CONFIG GET save` | one warning unless AOF is on, with how to turn it on |
 * | `connect()`                         | the dataset marker `<prefix>:dataset`: created if missing, its token remembered | nothing |
 * | every reconnection; a `NOGROUP` read | the marker still holds the token remembered       | an error log and a backend `error` event: messages may have been lost |
 *
 * The marker is one small string key per prefix and database, shared by every instance: an instance
 * that finds it gone (or made again by another instance) knows the dataset it wrote to is gone. An
 * instance started after the loss cannot tell: it never saw the data.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { MessagingError } from '../../errors/messaging.errors';
import { redactCredentials } from '../../backend/redact-credentials';
import type { ResolvedRedisOptions } from './redis-backend.options';
import { nodeFor } from './redis-cluster';
import type { RedisKeys } from './redis-topology';

/** Redis came back without the data this backend had written: messages may have been lost. */
export class RedisDataLostError extends MessagingError {
  readonly code = 'DATA_LOST';
}

/** What a Redis server keeps across a restart, as read at connect. */
export interface RedisPersistence {
  /** `appendonly yes`: every write is logged, and replayed at a restart. */
  readonly aof: boolean;
  /** RDB save points (`'3600 1 300 100'`; `''`: none); undefined when `CONFIG GET` is refused. */
  readonly savePoints?: string;
}

const TURN_AOF_ON =
  "Turn AOF on: 'appendonly yes' in redis.conf (or CONFIG SET appendonly yes, then CONFIG REWRITE).";

/** The warning to log at connect about `persistence` of the Redis at `url`; none when AOF is on. */
export function persistenceWarning(persistence: RedisPersistence, url: string): string | undefined {
  if (persistence.aof) return undefined;
  const { savePoints } = persistence;
  if (savePoints === '') {
    return (
      `Redis at ${url} persists nothing (appendonly no, no save points): a restart or crash of Redis ` +
      'loses every message, retry, delayed message and dead letter it holds, confirmed publishes ' +
      `included. ${TURN_AOF_ON}`
    );
  }
  if (savePoints === undefined) {
    return (
      `Redis at ${url} has AOF off (appendonly no), and its RDB save points could not be read ` +
      '(CONFIG GET is not allowed): a restart or crash of Redis loses every message written since ' +
      `the last snapshot, or every message if it takes none, confirmed publishes included. ${TURN_AOF_ON}`
    );
  }
  return (
    `Redis at ${url} only takes RDB snapshots (save ${savePoints}), with AOF off (appendonly no): ` +
    'a restart or crash of Redis loses every message written since the last snapshot, confirmed ' +
    `publishes included. ${TURN_AOF_ON}`
  );
}

/** Reads what `redis` persists: AOF from `INFO persistence`, save points from `CONFIG GET save`. */
export async function readPersistence(redis: Redis): Promise<RedisPersistence> {
  const info = await redis.info('persistence');
  const aof = /^aof_enabled:1\s*$/m.test(info);
  if (aof) return { aof };
  const savePoints = await redis.config('GET', 'save').then(
    (reply) => String((reply as string[])[1] ?? '').trim(),
    () => undefined, // a managed Redis may refuse CONFIG
  );
  return { aof, savePoints };
}

/**
 * Says what Redis keeps for one backend: the persistence warning at connect, and the error when Redis
 * came back without the dataset (see the table above). Reading fails quietly (Redis away, or refusing
 * a command): it is tried again at the next reconnection.
 */
export class RedisDurabilityWatch {
  /** The marker's token as last seen. */
  private seen?: string;
  private checking?: Promise<void>;
  /** The Redis URL, password hidden. */
  private readonly url: string;
  private readonly key: string;
  /** The prefix's hash slot: on a cluster, `INFO persistence` is asked of its master. */
  private readonly slot: number;

  /**
   * @param logger where the warning and the loss are logged (`warn`, `error`)
   * @param hub reports the loss as the backend's `error` event
   */
  constructor(
    options: Pick<ResolvedRedisOptions, 'url'>,
    keys: Pick<RedisKeys, 'dataset'> & Partial<Pick<RedisKeys, 'slot'>>,
    private readonly logger: { warn(message: string): void; error(message: string): void },
    private readonly hub: { emitError(error: Error): void },
  ) {
    this.url = redactCredentials(options.url);
    this.key = keys.dataset;
    this.slot = keys.slot ?? 0;
  }

  /** At connect: warns unless AOF is on, and remembers the marker (making it if missing). */
  async connected(redis: Redis): Promise<void> {
    const warning = await readPersistence(nodeFor(redis, this.slot)).then(
      (persistence) => persistenceWarning(persistence, this.url),
      () => undefined,
    );
    if (warning !== undefined) this.logger.warn(warning);
    await this.recheck(redis);
  }

  /**
   * After a reconnection or a vanished group: reports a lost dataset once, when the marker is gone
   * or was made again by another instance. Checks running at once share one.
   */
  recheck(redis: Redis): Promise<void> {
    this.checking ??= this.compare(redis)
      .catch(() => undefined)
      .finally(() => (this.checking = undefined));
    return this.checking;
  }

  private async compare(redis: Redis): Promise<void> {
    const token = randomUUID();
    const created = (await redis.set(this.key, token, 'NX')) === 'OK';
    const current = created ? token : await redis.get(this.key);
    const lost = this.seen !== undefined && current !== this.seen;
    this.seen = current ?? undefined;
    if (!lost) return;
    const error = new RedisDataLostError(
      `Redis at ${this.url} came back without this backend's data: the key '${this.key}' it wrote ` +
        'at connect is gone (Redis restarted without persistence, failed over to a replica that ' +
        'lacked it, or was flushed). Messages, retries, delayed messages and dead letters it held ' +
        `may have been lost; the streams and consumer groups are declared again. ${TURN_AOF_ON}`,
    );
    this.logger.error(error.message);
    this.hub.emitError(error);
  }
}
