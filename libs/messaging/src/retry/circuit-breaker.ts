/**
 * The circuit breaker of one handler (`@Consume(topic, { circuitBreaker })`): after `failures`
 * failures within `windowMs`, stop handing it messages for `openMs`, then try one; its success closes
 * the circuit, its failure opens it again. A pure state machine: the server holds the deliveries and
 * keeps the timer (`HandlerBreakers`); here is only what happens next.
 *
 * Each delivery the breaker admits gets a ticket: a `run` while closed, the `trial` when half-open.
 * Its verdict counts only while the circuit is still where it was admitted: the outcome of a run
 * admitted before the circuit opened decides nothing about a later trial.
 *
 * | state       | `admit()`                     | verdict `ok`   | verdict `failed`                                   | verdict `none`      |
 * | ----------- | ----------------------------- | -------------- | -------------------------------------------------- | ------------------- |
 * | `closed`    | `run`                         | nothing        | counted; the `failures`-th within `windowMs` opens | nothing             |
 * | `open`      | none: the delivery waits      | (ignored)      | (ignored)                                          | (ignored)           |
 * | `half-open` | `trial` once, then none       | closes         | opens again for `openMs`                           | another trial       |
 *
 * Verdicts: `failed` is a handler error the retry policy retries or dead-letters (or drops with
 * `deadLetter: false`); `ok` a handler that returned; `none` a delivery that says nothing of the
 * handler's health (a malformed or invalid message, an `UnrecoverableError`, a duplicate, an expired
 * request, a delivery handed back at shutdown).
 */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** What one admitted delivery says of the handler's health. */
export type CircuitVerdict = 'ok' | 'failed' | 'none';

/** What `admit()` gave a delivery: recorded with its verdict. */
export type CircuitTicket = 'run' | 'trial';

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

/** What a verdict changed: the server logs it, measures it and holds or releases deliveries. */
export type CircuitChange = 'opened' | 'closed' | 'retrial' | undefined;

export class CircuitBreaker {
  private current: CircuitState = 'closed';
  /** When each failure counted in the window happened (epoch ms), oldest first. */
  private readonly recent: number[] = [];
  private trialTaken = false;

  constructor(readonly options: ResolvedCircuitBreaker) {}

  get state(): CircuitState {
    return this.current;
  }

  /** The ticket of a delivery that may run now; undefined when it must wait. */
  admit(): CircuitTicket | undefined {
    if (this.current === 'closed') return 'run';
    if (this.current === 'open' || this.trialTaken) return undefined;
    this.trialTaken = true;
    return 'trial';
  }

  /** `openMs` passed since it opened: the next delivery is a trial. */
  halfOpen(): void {
    if (this.current !== 'open') return;
    this.current = 'half-open';
    this.trialTaken = false;
  }

  /** The verdict of a delivery admitted with `ticket`, at `now` (epoch ms). */
  record(ticket: CircuitTicket, verdict: CircuitVerdict, now: number): CircuitChange {
    if (this.current === 'closed' && ticket === 'run') {
      if (verdict !== 'failed') return undefined;
      this.recent.push(now);
      while (this.recent.length > 0 && this.recent[0] <= now - this.options.windowMs) {
        this.recent.shift();
      }
      return this.recent.length >= this.options.failures ? this.open() : undefined;
    }
    if (this.current !== 'half-open' || ticket !== 'trial') return undefined;
    if (verdict === 'failed') return this.open();
    if (verdict === 'none') {
      this.trialTaken = false;
      return 'retrial';
    }
    this.current = 'closed';
    this.recent.length = 0;
    return 'closed';
  }

  private open(): CircuitChange {
    this.current = 'open';
    this.recent.length = 0;
    return 'opened';
  }
}
