import { AsyncLocalStorage } from 'node:async_hooks';
import { Logger } from '@nestjs/common';

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

/**
 * When handlers run in the scope (`MessagingModule.forRoot({ requestContext })`): `true` always,
 * `false` never, `'auto'` (the default) once the app has read it.
 */
export type RequestContextMode = boolean | 'auto';

const scope = new AsyncLocalStorage<CurrentMessage>();

/**
 * Whether anything in this process has asked for the current message. On Node 20 the scope is not
 * free: once a store is entered, every promise of the process pays AsyncLocalStorage's hooks (a
 * third of the in-memory pipeline's time: docs/performance.md). So in `'auto'` mode handlers enter it
 * only from the first call of `currentMessage()` on, which a logger that stamps its lines with it
 * makes at start-up (or for a message that carries a trace: `MessagingTracer`).
 */
let read = false;
/** A handler ran without the scope while `'auto'` waited for a reader (for the first read's warning). */
let ranUnscoped = false;

/**
 * The message being handled by the code running now, or `undefined` outside a handler.
 *
 * With `requestContext: 'auto'` (the default) handlers run in the scope from the first call of
 * `currentMessage()` in the process on: call it once at start-up (a logger that stamps its lines
 * with it does), or set `requestContext: true`, to have it from the very first message.
 *
 * @example
 * const message = currentMessage();
 * this.logger.log(`charged [message ${message?.messageId}, trace ${message?.traceId}]`);
 */
export function currentMessage(): CurrentMessage | undefined {
  if (!read) firstRead();
  return scope.getStore();
}

function firstRead(): void {
  read = true;
  if (!ranUnscoped) return;
  new Logger('Messaging').warn(
    "currentMessage() was first called after handlers had run without the request scope (requestContext 'auto'): " +
      'handlers have it from now on, the messages handled before had none. Call currentMessage() once at start-up, ' +
      'or set requestContext: true, to have it from the first message.',
  );
}

/** The current message for the library's own use (a publish continuing its trace): not a read. */
export function scopedMessage(): CurrentMessage | undefined {
  return scope.getStore();
}

/**
 * Whether a handler runs in the scope under `mode` (see {@link RequestContextMode}). A handler that
 * does not under `'auto'` is recorded, for the warning of a first read that comes too late.
 */
export function enterScope(mode: RequestContextMode): boolean {
  if (mode === 'auto') {
    if (read) return true;
    ranUnscoped = true;
    return false;
  }
  return mode;
}

/** Runs `work` with `message` as the current message. */
export function runWithMessage<T>(message: CurrentMessage, work: () => T): T {
  return scope.run(message, work);
}
