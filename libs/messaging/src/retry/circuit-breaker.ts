/**
 * The circuit breaker of one handler (`@Consume(topic, { circuitBreaker })`): after `failures`
 * failures within `windowMs`, stop handing it messages for `openMs`, then try one; its success closes
 * the circuit, its failure opens it again. A pure state machine: the server holds the deliveries and
 * keeps the timer (`HandlerBreakers`); here is only what happens next.
 *
 * | state       | `admit()`                          | a success                  | a failure                                       |
 * | ----------- | ---------------------------------- | -------------------------- | ----------------------------------------------- |
 * | `closed`    | yes                                | stays closed               | counted; the `failures`-th within `windowMs` opens |
 * | `open`      | no: the delivery waits             | (from a run admitted before) nothing | nothing                              |
 * | `half-open` | yes for one delivery (the trial), then no | closes                | opens again for `openMs`                        |
 *
 * A failure is a handler error the retry policy retries or dead-letters: not a malformed or invalid
 * message, which says nothing of the handler's health.
 */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** `@Consume(..., { circuitBreaker })`. */
export interface CircuitBreakerOptions {
  /** Failures within `windowMs` that open the circuit. */
  failures: number;
  /** The window failures are counted in. @default 60000 */
  windowMs?: number;
  /** How long the circuit stays open before one message is tried. @default 30000 */
  openMs?: number;
}

export type ResolvedCircuitBreaker = Required<CircuitBreakerOptions>;

export const DEFAULT_BREAKER_WINDOW_MS = 60_000;
export const DEFAULT_BREAKER_OPEN_MS = 30_000;

/** What a recorded outcome changed, for the log and the metrics. */
export type CircuitChange = 'opened' | 'closed' | undefined;

export class CircuitBreaker {
  private current: CircuitState = 'closed';
  /** When each failure counted in the window happened (epoch ms), oldest first. */
  private readonly recent: number[] = [];
  private trialTaken = false;

  constructor(readonly options: ResolvedCircuitBreaker) {}

  get state(): CircuitState {
    return this.current;
  }

  /** Whether a delivery may run now. In `half-open`, the first to ask is the trial. */
  admit(): boolean {
    if (this.current === 'closed') return true;
    if (this.current === 'open' || this.trialTaken) return false;
    this.trialTaken = true;
    return true;
  }

  /** `openMs` passed since it opened: the next delivery is a trial. */
  halfOpen(): void {
    if (this.current !== 'open') return;
    this.current = 'half-open';
    this.trialTaken = false;
  }

  /** A run the breaker admitted succeeded. */
  success(): CircuitChange {
    if (this.current !== 'half-open') return undefined;
    this.current = 'closed';
    this.recent.length = 0;
    return 'closed';
  }

  /** A run the breaker admitted failed, at `now` (epoch ms). */
  failure(now: number): CircuitChange {
    if (this.current === 'half-open') return this.open();
    if (this.current === 'open') return undefined;
    this.recent.push(now);
    while (this.recent.length > 0 && this.recent[0] <= now - this.options.windowMs) {
      this.recent.shift();
    }
    return this.recent.length >= this.options.failures ? this.open() : undefined;
  }

  private open(): CircuitChange {
    this.current = 'open';
    this.recent.length = 0;
    return 'opened';
  }
}
