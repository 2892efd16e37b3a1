/**
 * Retry options as users write them (module-wide in `forRoot({ retry })`, per handler in
 * `@Consume(topic, { retry })`), their defaults, their checks, and how a handler's options merge over
 * the module's. `retry-policy.ts` decides with the resolved result.
 */
import { checkNumber, checkInteger, checkOptionsObject } from '../errors/config-checks';
import { MessagingConfigError } from '../errors/messaging.errors';
import type { ResolvedBackoff, ResolvedRetryPolicy } from './retry-policy';

/** Backoff options; every field is optional and merged over the defaults. */
export interface BackoffOptions {
  /** Delay before the second attempt. @default 1000 */
  initialDelayMs?: number;
  /** Growth factor of each next delay. @default 2 */
  multiplier?: number;
  /** Upper bound of any delay. @default 60000 */
  maxDelayMs?: number;
  /**
   * Random extra delay, as a fraction of the delay (0 to 1), so that retries of many messages do
   * not stampede. `true` means the default fraction, `false` none. @default 0.2
   */
  jitter?: number | boolean;
}

/** Retry options, module-wide (`forRoot({ retry })`) or per handler (`@Consume(topic, { retry })`). */
export interface RetryOptions {
  /** Handler calls in all, the first included; 1 means no retry. @default 5 */
  maxAttempts?: number;
  backoff?: BackoffOptions;
}

export const DEFAULT_BACKOFF: ResolvedBackoff = {
  initialDelayMs: 1000,
  multiplier: 2,
  maxDelayMs: 60_000,
  jitter: 0.2,
};
export const DEFAULT_RETRY: ResolvedRetryPolicy = { maxAttempts: 5, backoff: DEFAULT_BACKOFF };

/**
 * Longest delay of a retry or a delayed publish: 30 days, which every backend holds exactly (within
 * the 49.7 days `AmqpBackend`'s delay levels hold in one pass). Longer waits belong in a scheduler,
 * not in a broker queue.
 */
export const MAX_DELAY_MS = 30 * 86_400_000;

const RETRY_KEYS = ['maxAttempts', 'backoff'] as const;
const BACKOFF_KEYS = ['initialDelayMs', 'multiplier', 'maxDelayMs', 'jitter'] as const;

/**
 * Checks retry options as written (`false`, or an object whose fields are each optional) and returns
 * them; throws a `MessagingConfigError` naming the first bad field. `where` prefixes the message.
 */
export function checkRetryOptions(retry: unknown, where: string): RetryOptions | false | undefined {
  if (retry === false || retry === undefined) return retry;
  if (retry === true || typeof retry !== 'object' || retry === null) {
    throw new MessagingConfigError(
      `${where} must be false or { maxAttempts?, backoff? }, got ${JSON.stringify(retry)}`,
    );
  }
  const options = checkOptionsObject(retry as RetryOptions, RETRY_KEYS, where) as RetryOptions;
  checkInteger(options.maxAttempts, 1, `${where}.maxAttempts`, 1, 1_000_000);
  const backoff = checkOptionsObject(options.backoff, BACKOFF_KEYS, `${where}.backoff`);
  if (backoff) {
    checkInteger(backoff.initialDelayMs, 0, `${where}.backoff.initialDelayMs`, 0, MAX_DELAY_MS);
    checkNumber(backoff.multiplier, 1, `${where}.backoff.multiplier`, 1);
    checkInteger(backoff.maxDelayMs, 0, `${where}.backoff.maxDelayMs`, 0, MAX_DELAY_MS);
    if (typeof backoff.jitter !== 'boolean')
      checkNumber(backoff.jitter, 0, `${where}.backoff.jitter`, 0, 1);
  }
  return options;
}

/**
 * Merges checked retry options over `base` (the module's policy for a handler, the defaults for the
 * module); `false` turns retries off. Throws when the merge gives a `maxDelayMs` below
 * `initialDelayMs` (each may come from a different place).
 */
export function resolveRetry(
  retry: RetryOptions | false | undefined,
  base: ResolvedRetryPolicy | false,
  where: string,
): ResolvedRetryPolicy | false {
  if (retry === false) return false;
  if (retry === undefined) return base;
  const from = base === false ? DEFAULT_RETRY : base;
  const backoff = retry.backoff ?? {};
  const jitter = backoff.jitter;
  const resolved: ResolvedRetryPolicy = {
    maxAttempts: retry.maxAttempts ?? from.maxAttempts,
    backoff: {
      initialDelayMs: backoff.initialDelayMs ?? from.backoff.initialDelayMs,
      multiplier: backoff.multiplier ?? from.backoff.multiplier,
      maxDelayMs: backoff.maxDelayMs ?? from.backoff.maxDelayMs,
      jitter:
        jitter === undefined
          ? from.backoff.jitter
          : jitter === true
            ? DEFAULT_BACKOFF.jitter
            : jitter === false
              ? 0
              : jitter,
    },
  };
  if (resolved.backoff.maxDelayMs < resolved.backoff.initialDelayMs) {
    throw new MessagingConfigError(
      `${where}.backoff.maxDelayMs (${resolved.backoff.maxDelayMs}) is below initialDelayMs (${resolved.backoff.initialDelayMs}); raise maxDelayMs`,
    );
  }
  return resolved;
}
