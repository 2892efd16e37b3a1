import { MessagingConfigError } from '../errors/messaging.errors';
import { checkRetryOptions, DEFAULT_BACKOFF, DEFAULT_RETRY, resolveRetry } from './retry-options';
import type { ResolvedRetryPolicy } from './retry-policy';

const modulePolicy: ResolvedRetryPolicy = {
  maxAttempts: 2,
  backoff: { ...DEFAULT_BACKOFF, multiplier: 3 },
};

describe('resolveRetry: a handler policy merged over the module policy', () => {
  it.each<[string, Parameters<typeof resolveRetry>[0], ResolvedRetryPolicy | false, unknown]>([
    ['nothing set keeps the module policy', undefined, modulePolicy, modulePolicy],
    ['false turns retries off', false, modulePolicy, false],
    [
      'fields merge one by one',
      { backoff: { jitter: false } },
      modulePolicy,
      { maxAttempts: 2, backoff: { ...DEFAULT_BACKOFF, multiplier: 3, jitter: 0 } },
    ],
    [
      'jitter true means the default fraction',
      { backoff: { jitter: true } },
      { ...modulePolicy, backoff: { ...modulePolicy.backoff, jitter: 0 } },
      { maxAttempts: 2, backoff: { ...DEFAULT_BACKOFF, multiplier: 3 } },
    ],
    [
      'over a module without retries, the defaults fill the gaps',
      { maxAttempts: 3 },
      false,
      { ...DEFAULT_RETRY, maxAttempts: 3 },
    ],
  ])('%s', (_case, handler, base, expected) => {
    expect(resolveRetry(handler, base, 'h')).toEqual(expected);
  });

  it('refuses a merge whose maxDelayMs ends below its initialDelayMs', () => {
    expect(() =>
      resolveRetry(
        { backoff: { initialDelayMs: 90_000 } },
        DEFAULT_RETRY,
        '@Consume on A.b: retry',
      ),
    ).toThrow(/maxDelayMs \(60000\) is below initialDelayMs \(90000\); raise maxDelayMs/);
  });
});

describe('checkRetryOptions', () => {
  it.each([
    [true, /must be false or \{ maxAttempts\?, backoff\? \}/],
    [{ maxAttempts: 0 }, /maxAttempts must be a whole number from 1/],
    [{ backoff: 100 }, /backoff must be an object with 'initialDelayMs'/],
    [{ backoff: { multiplier: 0.5 } }, /backoff.multiplier must be a number from 1/],
    [{ backoff: { jitter: 1.5 } }, /backoff.jitter must be a number from 0 to 1/],
    [
      { backoff: { initialDelayMs: 30 * 86_400_000 + 1 } },
      /initialDelayMs must be a whole number from 0 to 2592000000/,
    ],
    [{ attempts: 3 }, /has no option 'attempts'; did you mean 'maxAttempts'\?/],
  ])('rejects %j', (retry, message) => {
    expect(() => checkRetryOptions(retry, 'r')).toThrow(MessagingConfigError);
    expect(() => checkRetryOptions(retry, 'r')).toThrow(message);
  });

  it('accepts false, nothing, and any subset of fields', () => {
    expect(checkRetryOptions(false, 'r')).toBe(false);
    expect(checkRetryOptions(undefined, 'r')).toBeUndefined();
    const retry = { maxAttempts: 3, backoff: { jitter: true } };
    expect(checkRetryOptions(retry, 'r')).toBe(retry);
  });
});
