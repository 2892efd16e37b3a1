import { checkInteger, checkOptionsObject, closest, loadOptionalPeer } from './config-checks';
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

describe('loadOptionalPeer: a missing client says what to install', () => {
  it('returns what it loaded', () => {
    expect(loadOptionalPeer('X needs y', 'y', () => 42)).toBe(42);
  });

  it('names the package to install and why the load failed, keeping the cause', () => {
    const missing = new Error("Cannot find module 'ioredis'\nRequire stack:\n- /app/main.js");
    let thrown: unknown;
    try {
      loadOptionalPeer("RedisStreamsBackend needs the 'ioredis' package", 'ioredis', () => {
        throw missing;
      });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(MessagingConfigError);
    expect((thrown as Error).message).toBe(
      "RedisStreamsBackend needs the 'ioredis' package: run `npm install ioredis`." +
        " (Cannot find module 'ioredis')",
    );
    expect((thrown as Error).cause).toBe(missing);
  });
});
