/**
 * `waitForReplicas` of {@link RedisStreamsBackend}: a publish resolves only once `WAIT` says that
 * enough replicas have it. Redis replicates asynchronously, so a message its master confirmed may be
 * lost when the master fails over before a replica got it; `WAIT n t` answers, after all the writes
 * sent before it on the same connection, how many replicas acknowledged them (at most `t` ms later).
 *
 * | step                          | what happens                                                            |
 * | ----------------------------- | ----------------------------------------------------------------------- |
 * | the write's reply comes back  | the publish joins the open batch (one per turn of the event loop)       |
 * | the turn ends (`nextTick`)    | ONE `WAIT replicas timeoutMs` on the command connection (on a cluster, its connection to the slot's master) covers every write of the batch |
 * | `WAIT` counts enough          | every publish of the batch resolves                                     |
 * | fewer, or the `WAIT` fails    | every publish of the batch rejects with `PublishTimeoutError`: the master has the message, which may or may not survive its failover |
 *
 * The `WAIT` is sent after the replies of the writes it covers, not right behind them: a write that
 * met a failover (retried by ioredis on the new master) is then covered by a `WAIT` on the node that
 * holds it. Its cost is one `WAIT` per batch (a round trip to the replicas), and the connection
 * holds its other commands meanwhile (Redis blocks the client until `WAIT` answers). The backend
 * makes none of this when the option is off.
 */
import type { Redis } from 'ioredis';
import { PublishTimeoutError } from '../../errors/messaging.errors';
import type { RedisWaitForReplicas } from './redis-backend.options';
import { nodeFor } from './redis-cluster';

interface Batch {
  readonly command: Redis;
  readonly waiters: Array<{ resolve(): void; reject(error: Error): void }>;
}

export class ReplicaWait {
  private batch?: Batch;

  /** @param slot the prefix's hash slot (whose master's connection carries the `WAIT` on a cluster) */
  constructor(
    private readonly wait: RedisWaitForReplicas,
    private readonly slot: number,
  ) {}

  /** `written` (a publish), resolved only once the replicas have it. */
  after(command: Redis, written: Promise<void>): Promise<void> {
    return written.then(() => this.join(command));
  }

  private join(command: Redis): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let batch = this.batch;
      if (batch === undefined || batch.command !== command) {
        batch = { command, waiters: [] };
        this.batch = batch;
        process.nextTick(() => this.flush(batch as Batch));
      }
      batch.waiters.push({ resolve, reject });
    });
  }

  private flush(batch: Batch): void {
    if (this.batch === batch) this.batch = undefined;
    const { replicas, timeoutMs } = this.wait;
    (nodeFor(batch.command, this.slot).call('WAIT', replicas, timeoutMs) as Promise<number>).then(
      (acknowledged) => {
        if (Number(acknowledged) >= replicas) {
          for (const w of batch.waiters) w.resolve();
          return;
        }
        const error = new PublishTimeoutError(
          `RedisStreamsBackend: Redis has the message, but only ${Number(acknowledged)} of the ${replicas} replicas ` +
            `asked for (waitForReplicas) acknowledged it within ${timeoutMs} ms. It may or may not survive a ` +
            'failover of its master: publish it again with the same messageId, or check the replicas (INFO replication).',
        );
        for (const w of batch.waiters) w.reject(error);
      },
      (cause: Error) => {
        const error = new PublishTimeoutError(
          `RedisStreamsBackend: Redis has the message, but waiting for its replicas (WAIT, waitForReplicas) failed: ${cause.message.replace(/\.$/, '')}. ` +
            'It may or may not survive a failover of its master: publish it again with the same messageId.',
          { cause },
        );
        for (const w of batch.waiters) w.reject(error);
      },
    );
  }
}
