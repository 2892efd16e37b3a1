import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The message a handler is handling, for the code it calls: loggers, request-scoped providers,
 * publishes (which continue its trace). Set for the whole handler call, including what it awaits.
 */
export interface CurrentMessage {
  readonly messageId: string;
  readonly correlationId?: string;
  /** The W3C trace id the message carried (or began). */
  readonly traceId: string;
  /** The span of this handling: the parent of what the handler publishes. */
  readonly spanId: string;
  readonly traceFlags: number;
  readonly traceState?: string;
  readonly topic: string;
  readonly service: string;
  /** The handler (`Class.method`). */
  readonly route: string;
  readonly attempt: number;
}

const scope = new AsyncLocalStorage<CurrentMessage>();

/**
 * The message being handled by the code running now, or `undefined` outside a handler.
 *
 * @example
 * const message = currentMessage();
 * this.logger.log(`charged [message ${message?.messageId}, trace ${message?.traceId}]`);
 */
export function currentMessage(): CurrentMessage | undefined {
  return scope.getStore();
}

/** Runs `work` with `message` as the current message. */
export function runWithMessage<T>(message: CurrentMessage, work: () => T): T {
  return scope.run(message, work);
}
