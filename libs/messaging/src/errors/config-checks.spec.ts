import { checkInteger, checkOptionsObject, closest } from './config-checks';
import { MessagingConfigError } from './messaging.errors';

describe('closest: the option a misspelt key most likely meant', () => {
  const known = ['maxAttempts', 'backoff', 'initialDelayMs', 'concurrency', 'deadLetter', 'retry'];
  it.each([
    ['maxAttempt', 'maxAttempts'],
    ['MaxAttempts', 'maxAttempts'],
    ['backof', 'backoff'],
    ['initialDelay', 'initialDelayMs'],
    ['concurency', 'concurrency'],
    ['deadletter', 'deadLetter'],
    ['retries', 'retry'],
    ['timeout', undefined],
    ['x', undefined],
  ])('%s -> %s', (key, expected) => {
    expect(closest(key, known)).toBe(expected);
  });
});

describe('checkOptionsObject and checkInteger', () => {
  it('accepts undefined and known keys, refuses the rest with what is valid', () => {
    expect(checkOptionsObject(undefined, ['a'], 'w')).toBeUndefined();
    expect(checkOptionsObject({ a: 1 }, ['a'], 'w')).toEqual({ a: 1 });
    expect(() => checkOptionsObject([] as never, ['a'], 'w')).toThrow(
      /w must be an object with 'a', got \[\]/,
    );
    expect(() => checkOptionsObject({ zzz: 1 } as never, ['a', 'b'], 'w')).toThrow(
      "w has no option 'zzz'. Valid options: 'a', 'b'.",
    );
  });

  it('returns the fallback for undefined and refuses what is out of range', () => {
    expect(checkInteger(undefined, 5, 'n', 1)).toBe(5);
    expect(checkInteger(3, 5, 'n', 1)).toBe(3);
    expect(() => checkInteger(0, 5, 'n', 1, 9)).toThrow(MessagingConfigError);
    expect(() => checkInteger('3', 5, 'n', 1, 9)).toThrow(
      'n must be a whole number from 1 to 9, got "3"',
    );
  });
});
