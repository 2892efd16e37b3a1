/**
 * Checks of user options, shared by every place that takes them (module, decorators, backends): each
 * throws a `MessagingConfigError` that names the option, what it must be, and what it got.
 */
import { MessagingConfigError } from './messaging.errors';

/** The backends whose older name of `namespace` was told deprecated in this process. */
const deprecationsTold = new Set<string>();

/**
 * A backend's namespace (what keeps apps on one broker apart: the exchange on RabbitMQ, the key
 * prefix on Redis, the subject and stream prefix on NATS): `options.namespace`, or the older name
 * this backend had for it (`exchange`, `prefix`), which still works and is told deprecated once per
 * process (a Node `DeprecationWarning`, silenced by `--no-deprecation`). Both, different: an error.
 */
export function namespaceOption<O extends { readonly namespace?: unknown }>(
  options: O,
  olderName: keyof O & string,
  where: string,
): unknown {
  const { namespace } = options;
  const older: unknown = options[olderName];
  if (older === undefined) return namespace;
  if (namespace !== undefined && namespace !== older) {
    throw new MessagingConfigError(
      `${where}: namespace ${show(namespace)} and ${olderName} ${show(older)} name two namespaces; ` +
        `give namespace only (${olderName} is its older name)`,
    );
  }
  if (namespace === undefined && !deprecationsTold.has(where)) {
    deprecationsTold.add(where);
    process.emitWarning(
      `${where}: the option '${olderName}' is deprecated; name it 'namespace' (same value, same meaning).`,
      { type: 'DeprecationWarning', code: 'NEST_MESSAGING_NAMESPACE' },
    );
  }
  return older;
}

/** A whole number in `[min, max]`, or `fallback` when `value` is undefined. */
export function checkInteger(
  value: unknown,
  fallback: number,
  where: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new MessagingConfigError(
      `${where} must be a whole number from ${min} to ${max}, got ${show(value)}`,
    );
  }
  return value;
}

/** A finite number in `[min, max]`, or `fallback` when `value` is undefined. */
export function checkNumber(
  value: unknown,
  fallback: number,
  where: string,
  min: number,
  max = Number.MAX_VALUE,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new MessagingConfigError(
      `${where} must be a number from ${min} to ${max}, got ${show(value)}`,
    );
  }
  return value;
}

/** `true` or `false`, or `fallback` when `value` is undefined. */
export function checkBoolean(value: unknown, fallback: boolean, where: string): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') {
    throw new MessagingConfigError(`${where} must be true or false, got ${show(value)}`);
  }
  return value;
}

/** A non-empty string of at most `maxLength` characters, or undefined. */
export function checkName(value: unknown, where: string, maxLength = 255): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) {
    throw new MessagingConfigError(
      `${where} must be a non-empty string of at most ${maxLength} characters, got ${show(value)}`,
    );
  }
  return value;
}

/**
 * An options object (or undefined) whose keys are all in `known`: a misspelt key is an error that
 * names the closest valid one, instead of an option silently ignored.
 *
 * @example
 * checkOptionsObject({ maxAttempt: 3 }, ['maxAttempts', 'backoff'], '@Consume on A.b: retry')
 * // MessagingConfigError: @Consume on A.b: retry has no option 'maxAttempt'; did you mean 'maxAttempts'? ...
 */
export function checkOptionsObject<T extends object>(
  value: T | undefined,
  known: readonly string[],
  where: string,
): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new MessagingConfigError(
      `${where} must be an object with ${list(known)}, got ${show(value)}`,
    );
  }
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const guess = closest(key, known);
    throw new MessagingConfigError(
      `${where} has no option '${key}'` +
        (guess ? `; did you mean '${guess}'?` : '.') +
        ` Valid options: ${list(known)}.`,
    );
  }
  return value;
}

function list(known: readonly string[]): string {
  return known.map((k) => `'${k}'`).join(', ');
}

/** The known name nearest to `key` (edit distance, case ignored), if near enough to be a typo. */
export function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  let bestScore = Infinity;
  for (const candidate of known) {
    const [k, c] = [key.toLowerCase(), candidate.toLowerCase()];
    const d = editDistance(k, c);
    // A shared beginning counts: 'retries' means 'retry' (distance 3) more than 'metrics' (2).
    const score = d - commonPrefix(k, c) / 2;
    if (score < bestScore) {
      best = candidate;
      bestDistance = d;
      bestScore = score;
    }
  }
  const tolerance = Math.max(2, Math.ceil(key.length * 0.45));
  return bestDistance <= tolerance ? best : undefined;
}

function commonPrefix(a: string, b: string): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length];
}

function show(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
