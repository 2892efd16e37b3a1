import type { Logger } from '@nestjs/common';
import type { MessagingInstruments } from '../observability/messaging-metrics';
import {
  CircuitBreaker,
  type CircuitState,
  type CircuitTicket,
  type CircuitVerdict,
  type ResolvedCircuitBreaker,
} from '../retry/circuit-breaker';
import { longTimeout } from '../backend/long-timeout';
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
  /** What cancels each pending half-open timer. */
  private readonly timers = new Set<() => void>();
  private closed = false;

  constructor(
    private readonly logger: Logger,
    private readonly instruments: MessagingInstruments,
    /** Called each time a delivery starts waiting for a circuit. */
    onWait: () => void,
  ) {
    this.gates.onWait = onWait;
  }

  add(handler: string, options: ResolvedCircuitBreaker): void {
    this.breakers.set(handler, new CircuitBreaker(options));
  }

  /** The circuit of `handler`, if it has a breaker. */
  state(handler: string): CircuitState | undefined {
    return this.breakers.get(handler)?.state;
  }

  /** The ticket of a delivery of `handler` that may run now; undefined when it must `wait()`. */
  admit(handler: string): CircuitTicket | undefined {
    return this.breakers.get(handler)?.admit();
  }

  /** Resolves true when a held delivery should ask again, false when the server closes. */
  wait(handler: string): Promise<boolean> {
    return this.gates.wait(handler);
  }

  /** How many deliveries of `handler` wait for its circuit. */
  waiting(handler: string): number {
    return this.gates.waitingFor(handler);
  }

  /** What an admitted delivery of `handler` said of its health. */
  record(handler: string, ticket: CircuitTicket, verdict: CircuitVerdict): void {
    const breaker = this.breakers.get(handler);
    const change = breaker?.record(ticket, verdict, Date.now());
    if (!breaker || !change || this.closed) return;
    if (change === 'opened') return this.opened(handler, breaker);
    if (change === 'closed') {
      this.instruments.circuit(handler, false);
      this.logger.log(`Circuit of ${handler} closed: the trial message succeeded`);
    }
    // Closed: they all go; another trial: they ask again, the first is the trial.
    this.gates.resume(handler);
  }

  /** The server closes: what waits goes back to the broker, and no timer is left behind. */
  close(): void {
    this.closed = true;
    for (const cancel of this.timers) cancel();
    this.timers.clear();
    this.gates.close();
  }

  private opened(handler: string, breaker: CircuitBreaker): void {
    const { failures, windowMs, openMs } = breaker.options;
    this.instruments.circuit(handler, true);
    this.logger.warn(
      `Circuit of ${handler} opened (${failures} failure(s) within ${windowMs} ms): its messages wait, unacknowledged, ${openMs} ms; then one is tried`,
    );
    const cancel = longTimeout(openMs, () => {
      this.timers.delete(cancel);
      breaker.halfOpen();
      this.logger.log(`Circuit of ${handler} half-open: trying one message`);
      this.gates.resume(handler); // the waiting ask again; the first is the trial
    });
    this.timers.add(cancel);
  }
}
