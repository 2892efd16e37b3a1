import { MessagingConfigError } from '../errors/messaging.errors';

/**
 * AMQP topic matching, shared by backends that route in process: words are separated by `.`,
 * `*` matches exactly one word and `#` matches zero or more words.
 */
export function topicMatches(pattern: string, topic: string): boolean {
  if (pattern === topic || pattern === '#') return true;
  if (!pattern.includes('*') && !pattern.includes('#')) return false;
  return matchWords(pattern.split('.'), 0, topic.split('.'), 0);
}

function matchWords(p: string[], pi: number, t: string[], ti: number): boolean {
  while (pi < p.length) {
    const word = p[pi];
    if (word === '#') {
      if (pi === p.length - 1) return true;
      for (let skip = ti; skip <= t.length; skip++) {
        if (matchWords(p, pi + 1, t, skip)) return true;
      }
      return false;
    }
    if (ti >= t.length) return false;
    if (word !== '*' && word !== t[ti]) return false;
    pi++;
    ti++;
  }
  return ti === t.length;
}

/** Throws a `MessagingConfigError` saying why when `pattern` is not a valid topic pattern. */
export function assertValidTopicPattern(
  pattern: unknown,
  where: string,
): asserts pattern is string {
  if (typeof pattern !== 'string' || pattern.length === 0 || pattern.length > 255) {
    throw new MessagingConfigError(
      `${where}: a topic must be a non-empty string of at most 255 characters, got ${JSON.stringify(pattern)}`,
    );
  }
  if (pattern.split('.').some((w) => w.length === 0)) {
    throw new MessagingConfigError(
      `${where}: topic '${pattern}' has an empty word (two dots in a row, or a leading or trailing dot)`,
    );
  }
}
