import type { DelayScheduler } from './delay-scheduler';

/** One queue of an in-memory broker that has work: messages ready for its consumers, or in flight. */
export interface QueueWork {
  readonly queue: string;
  /** Messages waiting for a consumer of the queue. */
  readonly ready: number;
  /** Deliveries of the queue's current consumers whose handler has not finished. */
  readonly inFlight: number;
}

/** What an in-memory broker has in hand at one moment. */
export interface BrokerWork {
  /** Deliveries handed to a handler and not settled yet, whoever's consumer it was. */
  readonly inFlight: number;
  /** Retries and delayed publishes waiting for their delay to pass. */
  readonly delayed: number;
  /** The queues with work; a queue without consumers is not listed (nothing there can move). */
  readonly queues: readonly QueueWork[];
}

/** Which wait is over when the broker is idle. */
export interface IdleOptions {
  /**
   * Whether retries and delayed publishes still waiting for their time keep the broker busy. Off for
   * a clock a test moves itself: what waits for it cannot move until the test moves it. @default true
   */
  readonly includeDelayed?: boolean;
  /** Gives up the wait: the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /**
   * How many deliveries in flight wait for the test rather than for the broker (a paused handler's,
   * an open circuit's): they do not keep the broker busy. @default none
   */
  readonly held?: () => number;
}

interface IdleWaiter {
  readonly includeDelayed: boolean;
  readonly held?: () => number;
  readonly resolve: () => void;
  /** Idle was seen; confirming it after a turn of the event loop. */
  confirming: boolean;
}

/**
 * Counts what an in-memory broker holds outside its queues (deliveries in flight, delays pending)
 * and tells waiters when it has nothing left to do. Event-driven: it looks at the queues only when
 * a delivery settled, a delay ran or a consumer left, and only while somebody waits, so a broker that
 * nobody waits on pays one counter per delivery.
 */
export class BrokerActivity {
  private inFlightCount = 0;
  private delayedCount = 0;
  private readonly waiters = new Set<IdleWaiter>();

  constructor(
    private readonly scheduler: DelayScheduler,
    /** Whether a queue that has an active consumer holds a ready message. */
    private readonly anyReady: () => boolean,
  ) {}

  get inFlight(): number {
    return this.inFlightCount;
  }

  get delayed(): number {
    return this.delayedCount;
  }

  /** A delivery was handed to a handler. */
  delivered(): void {
    this.inFlightCount++;
  }

  /** A delivery's handler finished (its settlement carried out, or dropped as stale). */
  settled(): void {
    this.inFlightCount--;
    this.changed();
  }

  /** Runs `task` after `delayMs` on the scheduler, counted as pending until then. */
  delay(delayMs: number, task: () => void): void {
    this.delayedCount++;
    this.scheduler.schedule(delayMs, () => {
      this.delayedCount--;
      task();
      this.changed();
    });
  }

  /** Work may have ended (a consumer left, a delivery settled): wakes the waiters whose wait is over. */
  changed(): void {
    for (const waiter of this.waiters) {
      if (!waiter.confirming && this.isIdle(waiter)) this.confirm(waiter);
    }
  }

  /** Resolves once the broker is idle (see {@link IdleOptions}); at once if it is now. */
  whenIdle(options: IdleOptions = {}): Promise<void> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.waiters.delete(waiter);
        reject(abortReason(signal as AbortSignal));
      };
      const waiter: IdleWaiter = {
        includeDelayed: options.includeDelayed ?? true,
        held: options.held,
        confirming: false,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
      this.changed();
    });
  }

  private isIdle({ includeDelayed, held }: IdleWaiter): boolean {
    return (
      this.inFlightCount === (held?.() ?? 0) &&
      (!includeDelayed || this.delayedCount === 0) &&
      !this.anyReady()
    );
  }

  /**
   * The broker is idle now; the waiter is released if it still is after one turn of the event loop,
   * once every continuation of the last handler has run (a requester receiving its reply, a publish
   * the handler did not await). If work began meanwhile, its end calls {@link changed} again.
   */
  private confirm(waiter: IdleWaiter): void {
    waiter.confirming = true;
    setImmediate(() => {
      waiter.confirming = false;
      if (!this.waiters.has(waiter) || !this.isIdle(waiter)) return;
      this.waiters.delete(waiter);
      waiter.resolve();
    });
  }
}

/** Why `signal` aborted, as an Error. */
function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(String(reason));
}
