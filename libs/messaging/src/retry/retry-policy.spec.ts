import { BadRequestException, NotFoundException } from '@nestjs/common';
import { RpcException } from '@nestjs/microservices';
import { ValidationError } from 'class-validator';
import { MalformedMessageError, UnrecoverableError } from '../errors/messaging.errors';
import {
  classifyFailure,
  computeBackoffDelay,
  decideSettlement,
  type ResolvedRetryPolicy,
} from './retry-policy';

const policy: ResolvedRetryPolicy = {
  maxAttempts: 4,
  backoff: { initialDelayMs: 100, multiplier: 2, maxDelayMs: 500, jitter: 0 },
};
const now = new Date('2026-01-01T00:00:00Z');
const decide = (
  attempt: number,
  error: unknown,
  overrides: Partial<Parameters<typeof decideSettlement>[0]> = {},
) =>
  decideSettlement({
    attempt,
    error,
    retry: policy,
    deadLetter: true,
    now,
    random: 0,
    ...overrides,
  });

describe('computeBackoffDelay', () => {
  it('grows exponentially from initialDelayMs and stops at maxDelayMs', () => {
    expect([1, 2, 3, 4, 5].map((a) => computeBackoffDelay(a, policy.backoff, 0))).toEqual([
      100, 200, 400, 500, 500,
    ]);
  });

  it('adds at most `jitter` of the delay, never less than the backoff, within the cap', () => {
    const backoff = { ...policy.backoff, jitter: 0.5 };
    expect(computeBackoffDelay(1, backoff, 0)).toBe(100);
    expect(computeBackoffDelay(1, backoff, 0.999)).toBe(150);
    expect(computeBackoffDelay(3, backoff, 0.999)).toBe(500);
  });
});

describe('decideSettlement', () => {
  it('retries a handler error with the backoff delay while attempts remain', () => {
    expect(decide(1, new Error('boom'))).toEqual({
      action: 'retry',
      delayMs: 100,
      failure: { reason: 'handler-error', message: 'boom', errorClass: 'Error', at: now },
    });
    expect(decide(3, new Error('boom'))).toMatchObject({ action: 'retry', delayMs: 400 });
  });

  it('dead-letters after maxAttempts with reason max-attempts', () => {
    expect(decide(4, new TypeError('x'))).toEqual({
      action: 'dead-letter',
      failure: { reason: 'max-attempts', message: 'x', errorClass: 'TypeError', at: now },
    });
  });

  it('never retries UnrecoverableError, malformed bodies or validation failures', () => {
    expect(decide(1, new UnrecoverableError('gone'))).toMatchObject({
      action: 'dead-letter',
      failure: { reason: 'unrecoverable' },
    });
    expect(decide(1, new MalformedMessageError('bad'))).toMatchObject({
      action: 'dead-letter',
      failure: { reason: 'malformed' },
    });
    expect(
      decide(1, new BadRequestException(['amount must be positive', 'id must be a string'])),
    ).toMatchObject({
      action: 'dead-letter',
      failure: {
        reason: 'validation',
        message: 'amount must be positive; id must be a string',
        errorClass: 'BadRequestException',
      },
    });
  });

  it('with retry: false dead-letters on the first failure, keeping the reason', () => {
    expect(decide(1, new Error('no'))).toMatchObject({ action: 'retry' });
    expect(decide(1, new Error('no'), { retry: false })).toMatchObject({
      action: 'dead-letter',
      failure: { reason: 'handler-error' },
    });
  });

  it('acknowledges and drops when dead-lettering is off', () => {
    expect(decide(4, new Error('no'), { deadLetter: false })).toEqual({ action: 'ack' });
  });

  it('truncates long error messages to 1 KiB', () => {
    const settlement = decide(1, new Error('x'.repeat(5000)));
    expect(settlement.action === 'retry' && settlement.failure.message.length).toBe(1024);
  });

  it('classifies a ValidationPipe exceptionFactory RpcException as validation, a guard refusal as unrecoverable', () => {
    const invalid = Object.assign(new ValidationError(), {
      property: 'amount',
      constraints: { min: 'amount too small' },
    });
    expect(classifyFailure(new RpcException([invalid]))).toBe('validation');
    expect(classifyFailure(new RpcException('Forbidden resource'))).toBe('unrecoverable');
    expect(classifyFailure(new RpcException('something else'))).toBe('handler-error');
  });

  it('describes any thrown value without throwing itself', () => {
    const settlement = decide(1, Object.create(null));
    expect(settlement).toMatchObject({
      action: 'retry',
      failure: { message: '[object Object]', errorClass: 'object' },
    });
    expect(decide(1, null)).toMatchObject({ failure: { message: 'null', errorClass: 'null' } });
  });

  it('classifies other HTTP exceptions as handler errors (retryable)', () => {
    expect(classifyFailure(new NotFoundException())).toBe('handler-error');
    expect(classifyFailure({ status: 'error', message: 'Forbidden resource' })).toBe(
      'handler-error',
    );
  });
});
