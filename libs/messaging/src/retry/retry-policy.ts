import { BadRequestException, HttpException, UnprocessableEntityException } from '@nestjs/common';
import { RpcException } from '@nestjs/microservices';
import type { FailureReason, Settlement } from '../backend/broker-backend.interface';
import { describeFailure } from '../errors/failure';
import { MalformedMessageError, UnrecoverableError } from '../errors/messaging.errors';

/** Exponential backoff, resolved (every field set). */
export interface ResolvedBackoff {
  /** Delay before the second attempt. */
  readonly initialDelayMs: number;
  /** Each further delay is the previous one times this. */
  readonly multiplier: number;
  /** No delay exceeds this. */
  readonly maxDelayMs: number;
  /** Up to this fraction of the delay is added at random (0 = none), so retries do not stampede. */
  readonly jitter: number;
}

/** A retry policy, resolved. `maxAttempts` counts every handler call, the first included. */
export interface ResolvedRetryPolicy {
  readonly maxAttempts: number;
  readonly backoff: ResolvedBackoff;
}

/** Everything the decision depends on; no clocks or randomness hidden inside. */
export interface SettlementInput {
  /** The attempt that just failed (1 on the first delivery). */
  readonly attempt: number;
  readonly error: unknown;
  /** `false` when the handler opted out of retries. */
  readonly retry: ResolvedRetryPolicy | false;
  /** Whether failed messages are kept in the dead-letter queue (else dropped after logging). */
  readonly deadLetter: boolean;
  /** When the failure happened. */
  readonly now: Date;
  /** A number in [0, 1), `Math.random()` in production. */
  readonly random: number;
}

/**
 * The delay before attempt `attempt + 1`, after attempt `attempt` failed: `initialDelayMs ×
 * multiplier^(attempt-1)`, plus up to `jitter` of it at random, capped at `maxDelayMs`. Never less
 * than the un-jittered delay (within the cap), so "waits at least the backoff" holds.
 */
export function computeBackoffDelay(
  attempt: number,
  backoff: ResolvedBackoff,
  random: number,
): number {
  const base = backoff.initialDelayMs * Math.pow(backoff.multiplier, Math.max(0, attempt - 1));
  const jittered = base * (1 + backoff.jitter * random);
  return Math.round(Math.min(backoff.maxDelayMs, jittered));
}

/** What Nest throws when a guard refuses a message (`FORBIDDEN_MESSAGE` of @nestjs/core). */
const GUARD_REFUSAL = 'Forbidden resource';

/** Sorts an error into why a message failed. */
export function classifyFailure(error: unknown): FailureReason {
  if (error instanceof UnrecoverableError) return 'unrecoverable';
  if (error instanceof MalformedMessageError) return 'malformed';
  if (isValidationError(error)) return 'validation';
  // A guard's refusal does not change on a retry.
  if (error instanceof RpcException && error.getError() === GUARD_REFUSAL) return 'unrecoverable';
  return 'handler-error';
}

/**
 * A pipe's validation failure: Nest's `ValidationPipe` throws `BadRequestException` (or what its
 * `exceptionFactory` builds; 422 is the other common choice), and class-validator's raw errors are
 * arrays of `ValidationError`. Retrying never fixes a payload, so these go to the dead-letter queue.
 */
function isValidationError(error: unknown): boolean {
  if (error instanceof BadRequestException || error instanceof UnprocessableEntityException)
    return true;
  if (error instanceof HttpException) return [400, 422].includes(error.getStatus());
  // ValidationPipe({ exceptionFactory: (errors) => new RpcException(errors) }), common in microservices.
  if (error instanceof RpcException) return isValidationErrorList(error.getError());
  return isValidationErrorList(error);
}

function isValidationErrorList(value: unknown): boolean {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((e) => (e as object | null)?.constructor?.name === 'ValidationError')
  );
}

/**
 * The one place that decides what happens to a message whose handler failed. Pure: the same input
 * always gives the same settlement. Backends carry the result out.
 */
export function decideSettlement(input: SettlementInput): Settlement {
  const reason = classifyFailure(input.error);
  const { retry, attempt } = input;
  const retryable = reason === 'handler-error' && retry !== false && attempt < retry.maxAttempts;
  if (retryable) {
    const delayMs = computeBackoffDelay(attempt, retry.backoff, input.random);
    return { action: 'retry', delayMs, failure: describeFailure(input.error, reason, input.now) };
  }
  const finalReason = reason === 'handler-error' && retry !== false ? 'max-attempts' : reason;
  const failure = describeFailure(input.error, finalReason, input.now);
  // Without a dead-letter queue the message is acknowledged and dropped (the core logs it).
  return input.deadLetter ? { action: 'dead-letter', failure } : { action: 'ack' };
}
