/**
 * The lease of an exclusive subscription (`SubscriptionSpec.exclusive`) on a broker without a
 * single active consumer of its own: each instance of the queue tries every
 * {@link EXCLUSIVE_RENEW_MS} to take it (and the holder renews it), through a {@link LeaseStore} of
 * its broker (a Redis key, a JetStream subject). Only the holder consumes.
 *
 * The broker lets a lease go {@link EXCLUSIVE_LEASE_MS} after its last renewal; the holder counts
 * that from when it asked (not when the broker answered) and stops one renewal period earlier, so
 * it has stopped consuming before another instance can take over, whatever the network's delay. A
 * holder that crashed or lost the broker is replaced at most {@link EXCLUSIVE_LEASE_MS} +
 * {@link EXCLUSIVE_RENEW_MS} after its last renewal, within `EXCLUSIVE_TAKEOVER_MS`.
 */
import { EXCLUSIVE_LEASE_MS, EXCLUSIVE_RENEW_MS } from './exclusive';

/** One lease as a broker keeps it. */
export interface LeaseStore {
  /**
   * Takes the lease if it is free (or expired), renews it if this instance holds it; resolves
   * whether it holds it now, for {@link EXCLUSIVE_LEASE_MS}.
   */
  take(): Promise<boolean>;
  /** Gives the lease back if this instance holds it (never another's). */
  release(): Promise<void>;
}

export class LeaseKeeper {
  /** Until when (epoch ms) this instance holds the lease for sure; 0 while it does not. */
  private heldUntil = 0;
  private timer?: NodeJS.Timeout;
  private trying?: Promise<void>;
  private readonly waiters = new Set<() => void>();

  /** @param onError what a failed try reports (the next one comes {@link EXCLUSIVE_RENEW_MS} later) */
  constructor(
    private readonly store: LeaseStore,
    private readonly onError: (error: Error) => void,
  ) {}

  /** Whether this instance holds the lease now. */
  get held(): boolean {
    return Date.now() < this.heldUntil;
  }

  /** Tries to take the lease now, then every {@link EXCLUSIVE_RENEW_MS} (renewing it once held). */
  async start(): Promise<void> {
    await this.tryTake();
    this.timer = setInterval(() => void this.tryTake(), EXCLUSIVE_RENEW_MS);
    this.timer.unref();
  }

  /** Resolves once the lease is held, or {@link wakeWaiters} is called. */
  whenHeld(): Promise<void> {
    if (this.held) return Promise.resolve();
    return new Promise((resolve) => this.waiters.add(resolve));
  }

  /** Resolves every {@link whenHeld} now (its subscription stops). */
  wakeWaiters(): void {
    for (const wake of this.waiters) wake();
    this.waiters.clear();
  }

  /** Stops renewing, and gives the lease back if this instance holds it. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.wakeWaiters();
    await this.trying;
    this.heldUntil = 0;
    await this.store.release().catch((error: unknown) => this.onError(asError(error)));
  }

  private tryTake(): Promise<void> {
    this.trying ??= this.take().finally(() => (this.trying = undefined));
    return this.trying;
  }

  private async take(): Promise<void> {
    const askedAt = Date.now();
    try {
      const taken = await this.store.take();
      this.heldUntil = taken ? askedAt + EXCLUSIVE_LEASE_MS - EXCLUSIVE_RENEW_MS : 0;
    } catch (error) {
      // Unknown: held until the last renewal's term at most.
      this.onError(asError(error));
    }
    if (this.held) this.wakeWaiters();
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
