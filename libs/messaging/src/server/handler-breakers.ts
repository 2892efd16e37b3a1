import type { Logger } from '@nestjs/common';
import type { Settlement } from '../backend/broker-backend.interface';
import { MessagingHeaders } from '../backend/message-headers';
import type { MessagingInstruments } from '../observability/messaging-metrics';
import {
  CircuitBreaker,
  type CircuitState,
  type ResolvedCircuitBreaker,
} from '../retry/circuit-breaker';
import { PauseGates } from './pause-gates';

/**
 * The circuit breakers of the server's handlers (`@Consume(..., { circuitBreaker })`). While a
 * handler's circuit is open its deliveries wait here as a paused handler's do (unacknowledged, in
 * their slots: nothing is lost, a crash redelivers them); when `openMs` has passed they ask again and
 * the first one is the trial. Each change is logged and measured (`circuit_open`, `circuit_opened_total`).
 */
export class HandlerBreakers {
  private readonly breakers = new Map<string, CircuitBreaker>();
  private readonly gates = new PauseGates();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly logger: Logger,
    private readonly instruments: MessagingInstruments,
  ) {}

  add(handler: string, options: ResolvedCircuitBreaker): void {
    this.breakers.set(handler, new CircuitBreaker(options));
  }

  /** The circuit of `handler`, if it has a breaker. */
  state(handler: string): CircuitState | undefined {
    return this.breakers.get(handler)?.state;
  }

  /**
   * Undefined when a delivery of `handler` may run now; else a promise that resolves true when it
   * should ask again, false when the server closes (it goes back to the broker unhandled).
   */
  hold(handler: string): Promise<boolean> | undefined {
    const breaker = this.breakers.get(handler);
    return !breaker || breaker.admit() ? undefined : this.gates.wait(handler);
  }

  /** How an admitted run of `handler` ended. */
  record(handler: string, settlement: Settlement): void {
    const breaker = this.breakers.get(handler);
    if (!breaker) return;
    if (isFailure(settlement)) {
      if (breaker.failure(Date.now()) === 'opened') this.opened(handler, breaker);
    } else if (isSuccess(settlement) && breaker.success() === 'closed') {
      this.instruments.circuit(handler, false);
      this.logger.log(`Circuit of ${handler} closed: the trial message succeeded`);
      this.gates.resume(handler);
    }
  }

  /** The server closes: what waits goes back to the broker, and no timer is left behind. */
  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.gates.close();
  }

  private opened(handler: string, breaker: CircuitBreaker): void {
    const { failures, windowMs, openMs } = breaker.options;
    this.instruments.circuit(handler, true);
    this.logger.warn(
      `Circuit of ${handler} opened (${failures} failure(s) within ${windowMs} ms): its messages wait, unacknowledged, ${openMs} ms; then one is tried`,
    );
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      breaker.halfOpen();
      this.logger.log(`Circuit of ${handler} half-open: trying one message`);
      this.gates.resume(handler); // the waiting ask again; the first is the trial
    }, openMs);
    this.timers.add(timer);
  }
}

/** A handler error that the retry policy retries or dead-letters (not bad input). */
function isFailure(settlement: Settlement): boolean {
  if (settlement.action === 'retry') return true;
  return (
    settlement.action === 'dead-letter' &&
    (settlement.failure.reason === 'handler-error' || settlement.failure.reason === 'max-attempts')
  );
}

/** Handled: an ack that is not a request answered with its handler's error. */
function isSuccess(settlement: Settlement): boolean {
  return (
    settlement.action === 'ack' &&
    settlement.reply?.headers[MessagingHeaders.REPLY_ERROR] === undefined
  );
}
