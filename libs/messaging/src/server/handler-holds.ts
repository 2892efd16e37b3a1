import type { Logger } from '@nestjs/common';
import { MessagingConfigError } from '../errors/messaging.errors';
import type { MessagingInstruments } from '../observability/messaging-metrics';
import type { CircuitState } from '../retry/circuit-breaker';
import { HandlerBreakers } from './handler-breakers';
import { PauseGates } from './pause-gates';
import type { Route } from './route';

/** A handler as `MessagingServer.handlers` shows it, for what holds it back. */
export interface HandlerHold {
  readonly paused: boolean;
  /** Its circuit breaker's state, when it has one. */
  readonly circuit?: CircuitState;
  /** Its deliveries held now, unacknowledged, by a pause or an open circuit. */
  readonly held: number;
}

/** One handler as `MessagingServer.handlers` lists it: what it consumes, and what holds it back. */
export interface ServerHandler extends HandlerHold {
  /** `Class.method` */
  readonly handler: string;
  readonly queue: string;
  /** The topic patterns its queue is bound to (none for `@Consume({ queue })`). */
  readonly topics: readonly string[];
  /** The connection it consumes on (`'default'` unless `@Consume(..., { connection })`). */
  readonly connection: string;
  /** How many of its handlers (batches, for a batch route) run at once. */
  readonly concurrency: number;
}

/**
 * What holds a handler's deliveries back on purpose: `MessagingServer.pause()` (the `pauses`) and
 * circuit breakers (the `breakers`). Checks handler names once the server knows them, counts what is
 * held, and tells listeners (the testing kit) each time one more delivery waits.
 */
export class HandlerHolds {
  readonly pauses = new PauseGates();
  readonly breakers: HandlerBreakers;
  private readonly listeners = new Set<() => void>();
  private names: readonly string[] = [];

  constructor(
    private readonly logger: Logger,
    instruments: MessagingInstruments,
  ) {
    const held = (): void => this.listeners.forEach((listener) => listener());
    this.breakers = new HandlerBreakers(logger, instruments, held);
    this.pauses.onWait = held;
  }

  /** The server's handlers, once it started: their breakers, and the names paused before. */
  started(routes: readonly Route[]): void {
    this.names = routes.map((route) => route.name);
    // pause(name) before the start could not check the name: now it can.
    for (const name of this.pauses.named) this.checkName(name, 'pause');
    for (const route of routes) if (route.breaker) this.breakers.add(route.name, route.breaker);
  }

  pause(handler?: string): void {
    this.checkName(handler, 'pause');
    this.pauses.pause(handler);
    this.logger.log(
      `Paused ${handler ?? 'every handler'}: new messages wait, unacknowledged, until resume()`,
    );
  }

  resume(handler?: string): void {
    this.checkName(handler, 'resume');
    this.pauses.resume(handler);
    this.logger.log(`Resumed ${handler ?? 'every handler'}`);
  }

  /** What holds `handler` back now. */
  of(handler: string): HandlerHold {
    const circuit = this.breakers.state(handler);
    return {
      paused: this.pauses.isPaused(handler),
      ...(circuit ? { circuit } : {}),
      held: this.heldFor(handler),
    };
  }

  /** How many deliveries are held now, across handlers. */
  get held(): number {
    let held = 0;
    for (const name of this.names) held += this.heldFor(name);
    return held;
  }

  private heldFor(handler: string): number {
    return this.pauses.waitingFor(handler) + this.breakers.waiting(handler);
  }

  onHeld(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The server closes: what is held goes back to the broker. */
  close(): void {
    this.pauses.close();
    this.breakers.close();
  }

  /** Once started, a name that is none of this app's handlers is a mistake worth an error. */
  private checkName(handler: string | undefined, call: string): void {
    if (handler === undefined || this.names.length === 0 || this.names.includes(handler)) return;
    throw new MessagingConfigError(
      `MessagingServer.${call}('${handler}'): no handler of this app has that name. Use 'ClassName.methodName', one of: ${this.names.join(', ')}`,
    );
  }
}
