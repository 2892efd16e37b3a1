/**
 * An exclusive subscription's turn on Redis (`SubscriptionSpec.exclusive`): its reader reads only
 * while its instance holds the queue's lease (`redis-lease.ts`), and begins each turn with the deliveries
 * the previous holder left pending (claimed with `XAUTOCLAIM` at once, not after `claimIdleMs`), in
 * queue order, before anything new. What it gives back once it stopped (a requeue, a delivery read
 * meanwhile) stays pending rather than being copied to the end of the queue, so its successor claims
 * it first, in order; it gives the lease back once its deliveries in flight settled.
 */
import type { PendingEntry, RedisClaims } from './redis-claims';
import type { RedisSettlerContext } from './redis-settler';
import { LeaseKeeper } from '../../backend/lease-keeper';
import { redisLease } from './redis-lease';

/** What the turns need from their subscription. */
export interface ExclusiveOwner {
  /** The streams the subscription reads now. */
  streams(): Iterable<string>;
  stopped(): boolean;
  /** Hands a claimed entry to the subscription, as redelivered. */
  dispatch(entry: PendingEntry): void;
  /** Reports a failed try of the lease. */
  failed(error: Error): void;
}

export class RedisExclusive {
  /** What the last holder left, claimed at the start of this instance's turn, to hand out first. */
  private backlog: PendingEntry[] = [];
  private inTurn = false;
  readonly lease: LeaseKeeper;

  /** The turns of exclusive queue `queue`, the lease held under this instance's consumer name. */
  constructor(
    ctx: Pick<RedisSettlerContext, 'command' | 'keys'> & { readonly consumer: string },
    queue: string,
    private readonly claims: RedisClaims,
    private readonly owner: ExclusiveOwner,
  ) {
    const store = redisLease(ctx.command, ctx.keys.lease(queue), ctx.consumer);
    this.lease = new LeaseKeeper(store, (error) => owner.failed(error));
  }

  /**
   * Before each read: waits for the lease (or the subscription's stop), claims what the last holder
   * left when a turn begins, and hands out up to `free` of those. Resolves whether the subscription
   * reads now: not when it stopped, lost the lease, or was just handed some of the backlog.
   */
  async mayRead(free: number): Promise<boolean> {
    if (!this.lease.held) {
      this.inTurn = false;
      await this.lease.whenHeld();
      if (this.owner.stopped() || !this.lease.held) return false;
    }
    if (!this.inTurn) {
      this.backlog = await this.claims.claimAll(this.owner.streams());
      this.inTurn = true;
    }
    const first = this.backlog.splice(0, free);
    for (const entry of first) this.owner.dispatch(entry);
    return first.length === 0 && !this.owner.stopped();
  }
}
