import { HttpException } from '@nestjs/common';
import { RpcException } from '@nestjs/microservices';

/**
 * Why a message failed. `delivery-limit`: put in the dead-letter queue by the broker itself, after
 * too many redeliveries that were never settled (a message that crashes its consumer in a loop).
 */
export type FailureReason =
  | 'handler-error'
  | 'max-attempts'
  | 'unrecoverable'
  | 'validation'
  | 'malformed'
  | 'delivery-limit';

/** What went wrong, as recorded on retries and dead letters. */
export interface FailureInfo {
  /** Why the message failed: handler error, `UnrecoverableError`, validation, malformed body, broker limit. */
  readonly reason: FailureReason;
  /** The error's message, truncated to 1 KiB. */
  readonly message: string;
  /** The error's class name (`Error`, `UnrecoverableError`, `BadRequestException`, ...). */
  readonly errorClass: string;
  /** When this failure happened. */
  readonly at: Date;
  /**
   * Attempts made, when the core retried the delivery in place (an ordered handler holds its
   * message rather than sending a retry copy); else the delivery's own attempt counts.
   */
  readonly attempts?: number;
  /** When the first of those attempts failed (with `attempts`). */
  readonly firstAt?: Date;
}

/** Longest error message recorded on a retry or a dead letter, in characters. */
const MAX_ERROR_LENGTH = 1024;

/**
 * The error as recorded on retries and dead letters: its message (at most 1 KiB) and class name.
 * Never throws, whatever was thrown (even an object without a prototype).
 */
export function describeFailure(error: unknown, reason: FailureReason, at: Date): FailureInfo {
  return { reason, message: errorMessage(error), errorClass: errorClass(error), at };
}

function errorMessage(error: unknown): string {
  let message: string;
  try {
    message = describeError(error);
  } catch {
    message = Object.prototype.toString.call(error);
  }
  return message.length > MAX_ERROR_LENGTH ? `${message.slice(0, MAX_ERROR_LENGTH - 1)}…` : message;
}

function describeError(error: unknown): string {
  if (error instanceof HttpException) {
    const response = error.getResponse();
    const detail =
      typeof response === 'object' && response !== null
        ? (response as { message?: unknown }).message
        : undefined;
    if (Array.isArray(detail)) return detail.join('; ');
    return typeof detail === 'string' ? detail : error.message;
  }
  if (error instanceof RpcException) {
    const detail = error.getError();
    return typeof detail === 'string' ? detail : describeError(detail);
  }
  if (error instanceof Error) return error.message;
  if (Array.isArray(error)) return error.map((e) => String(e?.toString?.() ?? e)).join('; ');
  if (typeof error === 'object' && error !== null && 'message' in error) {
    return String(error.message);
  }
  return String(error);
}

function errorClass(error: unknown): string {
  try {
    if (error instanceof Error) return error.constructor.name;
  } catch {
    return 'Error';
  }
  if (Array.isArray(error)) return 'ValidationError';
  return error === null ? 'null' : typeof error;
}
