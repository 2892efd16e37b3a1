/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) in message headers: what links the span
 * that published a message to the spans that handle it, across retries, dead letters and replays
 * (the headers travel with every copy).
 *
 * | header        | written by                               | value                                   |
 * | ------------- | ---------------------------------------- | --------------------------------------- |
 * | `traceparent` | every publish that does not carry one    | `00-<trace id>-<parent span id>-<flags>` |
 * | `tracestate`  | a publish inside a trace that has one    | vendor state, passed on unchanged       |
 *
 * The parent of a publish is the active OpenTelemetry span when there is one, else the message being
 * handled. A message published outside any trace carries none: its handlers take the trace id from
 * its message id (`traceIdOf`), the same for every attempt, its dead letter and its replay. Without
 * OpenTelemetry the ids still travel, so the logs of one flow share a trace id.
 */
import { createHash, randomBytes } from 'node:crypto';

export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';

/** One position in a trace: what a `traceparent` header says. */
export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lowercase hex digits, not all zero: the span that published the message. */
  readonly spanId: string;
  /** Bit 0 set: the trace is sampled. */
  readonly flags: number;
  readonly state?: string;
}

const TRACEPARENT_FORMAT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** Reads a `traceparent` header (and `tracestate`); `undefined` when absent or not valid. */
export function parseTraceparent(value: unknown, state?: unknown): TraceContext | undefined {
  if (typeof value !== 'string') return undefined;
  const match = TRACEPARENT_FORMAT.exec(value.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match;
  // Version ff is invalid; version 00 has nothing after the flags; later versions may.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return {
    traceId,
    spanId,
    flags: parseInt(flags, 16),
    ...(typeof state === 'string' && state.length > 0 ? { state } : {}),
  };
}

/** The `traceparent` header of `context`. */
export function formatTraceparent(context: TraceContext): string {
  return `00-${context.traceId}-${context.spanId}-${(context.flags & 0xff).toString(16).padStart(2, '0')}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A trace id that is always the same for `messageId`: the UUID's own 32 hex digits (the library's
 * message ids are UUIDs), else the first 16 bytes of its SHA-256.
 */
export function traceIdOf(messageId: string): string {
  const hex = UUID.test(messageId)
    ? messageId.replace(/-/g, '').toLowerCase()
    : createHash('sha256').update(messageId).digest('hex').slice(0, 32);
  return /^0+$/.test(hex) ? createHash('sha256').update(hex).digest('hex').slice(0, 32) : hex;
}

/** A random span id (8 bytes, hex). */
export function newSpanId(): string {
  return randomHex(8);
}

// Random bytes drawn 4 KiB at a time: a publish takes 24 of them, not a system call.
let pool = Buffer.alloc(0);
let offset = 0;

function randomHex(bytes: number): string {
  for (;;) {
    if (offset + bytes > pool.length) {
      pool = randomBytes(4096);
      offset = 0;
    }
    const hex = pool.toString('hex', offset, offset + bytes);
    offset += bytes;
    if (!/^0+$/.test(hex)) return hex;
  }
}
