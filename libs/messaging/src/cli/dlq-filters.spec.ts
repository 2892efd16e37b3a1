import type { DeadLetter } from '../backend/broker-backend.interface';
import {
  ErrorGrouping,
  errorSignature,
  isFiltered,
  matchesFilter,
  parseCount,
  parseDuration,
  parseErrorMatcher,
  parseFilter,
  type FilterOptions,
} from './dlq-filters';
import { CliUsageError } from './cli-io';

const NOW = new Date('2025-03-01T12:00:00Z');
const minutesAgo = (m: number): Date => new Date(NOW.getTime() - m * 60_000);

type Letter = Pick<
  DeadLetter,
  'id' | 'topic' | 'reason' | 'error' | 'errorClass' | 'deadLetteredAt'
>;
const letter = (extra: Partial<Letter> = {}): Letter => ({
  id: 'l-1',
  topic: 'order.created',
  reason: 'max-attempts',
  error: 'gateway timeout after 5000 ms',
  errorClass: 'Error',
  deadLetteredAt: minutesAgo(90),
  ...extra,
});

describe('parseDuration', () => {
  it.each([
    ['90s', 90_000],
    ['30m', 1_800_000],
    ['1h', 3_600_000],
    ['2d', 172_800_000],
    ['1.5h', 5_400_000],
    ['1h30m', 5_400_000],
    [' 10m ', 600_000],
  ])('%j is %d ms', (text, ms) => {
    expect(parseDuration(text, '--older-than')).toBe(ms);
  });

  it.each(['', '1', 'h', '1x', '-1h', '0s', '1 h', '1h-', 'one hour', '1w'])(
    '%j is refused, naming the option and the units',
    (text) => {
      expect(() => parseDuration(text, '--newer-than')).toThrow(CliUsageError);
      expect(() => parseDuration(text, '--newer-than')).toThrow(
        /^--newer-than: .* is not a duration\. .*s, m, h or d/,
      );
    },
  );
});

describe('parseCount', () => {
  it.each([
    ['0', 0, 0],
    ['50', 1, 50],
  ])('%j (at least %d) is %d', (text, min, value) => {
    expect(parseCount(text, '--limit', min)).toBe(value);
  });

  it.each([
    ['0', 1],
    ['-1', 0],
    ['1.5', 0],
    ['ten', 0],
    ['', 0],
    ['99999999999999999999', 0],
  ])('%j (at least %d) is refused', (text, min) => {
    expect(() => parseCount(text, '--limit', min)).toThrow(/^--limit: .* at least/);
  });
});

describe('parseErrorMatcher', () => {
  it.each([
    ['timeout', 'timeout'],
    ['/timeout/', /timeout/],
    ['/time\\s*out/i', /time\s*out/i],
    ['/a/gy', /a/],
    ['/', '/'],
    ['//', '//'],
  ])('%j is %p', (text, expected) => {
    expect(parseErrorMatcher(text)).toEqual(expected);
  });

  it('refuses a regular expression that does not compile', () => {
    expect(() => parseErrorMatcher('/(unclosed/')).toThrow(
      /^--error: \/\(unclosed\/ is not a valid regular expression/,
    );
  });
});

describe('parseFilter', () => {
  it.each<[FilterOptions, object]>([
    [{}, {}],
    [{ topic: 'order.*' }, { topic: 'order.*' }],
    [{ reason: 'validation,malformed' }, { reasons: ['validation', 'malformed'] }],
    [{ error: '/boom/' }, { error: /boom/ }],
    [
      { olderThan: '1h', newerThan: '2h' },
      { olderThanMs: 3_600_000, newerThanMs: 7_200_000 },
    ],
  ])('%j', (options, filter) => {
    expect(parseFilter(options)).toEqual(filter);
  });

  it.each<[FilterOptions, RegExp]>([
    [{ topic: 'order..created' }, /--topic: .*empty word/],
    [
      { reason: 'timeout' },
      /--reason: 'timeout' is not a failure reason\. Use one or more of handler-error/,
    ],
    [{ reason: 'validation,' }, /--reason: '' is not/],
    [{ olderThan: '2h', newerThan: '1h' }, /select nothing/],
    [{ olderThan: '1h', newerThan: '1h' }, /select nothing/],
  ])('refuses %j', (options, message) => {
    expect(() => parseFilter(options)).toThrow(CliUsageError);
    expect(() => parseFilter(options)).toThrow(message);
  });

  it('knows an empty filter', () => {
    expect(isFiltered(parseFilter({}))).toBe(false);
    expect(isFiltered(parseFilter({ topic: 'a' }))).toBe(true);
  });
});

describe('matchesFilter', () => {
  it.each<[string, FilterOptions, Partial<Letter>, boolean]>([
    ['no filter', {}, {}, true],
    ['same topic', { topic: 'order.created' }, {}, true],
    ['other topic', { topic: 'order.paid' }, {}, false],
    ['* pattern', { topic: 'order.*' }, {}, true],
    ['* is one word', { topic: 'order.*' }, { topic: 'order.eu.created' }, false],
    ['# pattern', { topic: 'order.#' }, { topic: 'order.eu.created' }, true],
    ['reason in list', { reason: 'validation,max-attempts' }, {}, true],
    ['reason not in list', { reason: 'validation' }, {}, false],
    ['error substring', { error: 'timeout' }, {}, true],
    ['substring is case-sensitive', { error: 'Timeout' }, {}, false],
    ['error class substring', { error: 'TypeError' }, { errorClass: 'TypeError' }, true],
    ['regex', { error: '/^gateway/' }, {}, true],
    ['regex flags', { error: '/GATEWAY/i' }, {}, true],
    ['regex no match', { error: '/^timeout/' }, {}, false],
    ['older than, older', { olderThan: '1h' }, {}, true],
    ['older than, newer', { olderThan: '2h' }, {}, false],
    ['newer than, newer', { newerThan: '2h' }, {}, true],
    ['newer than, older', { newerThan: '1h' }, {}, false],
    ['in a window', { newerThan: '2h', olderThan: '1h' }, {}, true],
    [
      'before a window',
      { newerThan: '2h', olderThan: '1h' },
      { deadLetteredAt: minutesAgo(150) },
      false,
    ],
    [
      'every field',
      { topic: 'order.*', reason: 'max-attempts', error: 'gateway', olderThan: '1m' },
      {},
      true,
    ],
    ['one field off', { topic: 'order.*', reason: 'validation', error: 'gateway' }, {}, false],
  ])('%s', (_, options, extra, matches) => {
    expect(matchesFilter(letter(extra), parseFilter(options), NOW)).toBe(matches);
  });

  it('matches a regex on every letter, though g was asked (no lastIndex carried over)', () => {
    const filter = parseFilter({ error: '/timeout/g' });
    expect([1, 2, 3].map(() => matchesFilter(letter(), filter, NOW))).toEqual([true, true, true]);
  });
});

describe('errorSignature', () => {
  it.each([
    ['gateway timeout', 'Error: gateway timeout'],
    ['order 42 not found', 'Error: order <n> not found'],
    ['took 12.5 s', 'Error: took <n> s'],
    ['order 3f2a9c1e-7b4d-4e1a-9c2b-5d6e7f8a9b0c failed', 'Error: order <id> failed'],
    ['tx 9f86d081884c7d65 rejected', 'Error: tx <id> rejected'],
    ['deadbeef is a word', 'Error: deadbeef is a word'],
    ['first line\n    at stack (file.js:1:2)', 'Error: first line'],
  ])('%j is %j', (error, signature) => {
    expect(errorSignature({ error, errorClass: 'Error' })).toBe(signature);
  });
});

describe('ErrorGrouping', () => {
  it('makes one line of one kind of error, largest group first', () => {
    const grouping = new ErrorGrouping();
    grouping.add(letter({ id: 'a', error: 'order 1 not found', deadLetteredAt: minutesAgo(30) }));
    grouping.add(letter({ id: 'b', error: 'boom', errorClass: 'TypeError', topic: 'pay.x' }));
    grouping.add(
      letter({
        id: 'c',
        error: 'order 2 not found',
        topic: 'order.paid',
        deadLetteredAt: minutesAgo(10),
      }),
    );
    grouping.add(
      letter({
        id: 'd',
        error: 'order 3 not found',
        reason: 'validation',
        deadLetteredAt: minutesAgo(50),
      }),
    );
    expect(grouping.groups()).toEqual([
      {
        error: 'Error: order <n> not found',
        count: 3,
        topics: ['order.created', 'order.paid'],
        reasons: ['max-attempts', 'validation'],
        firstSeen: minutesAgo(50),
        lastSeen: minutesAgo(10),
        latestId: 'c',
      },
      {
        error: 'TypeError: boom',
        count: 1,
        topics: ['pay.x'],
        reasons: ['max-attempts'],
        firstSeen: minutesAgo(90),
        lastSeen: minutesAgo(90),
        latestId: 'b',
      },
    ]);
  });

  it('orders groups of one size by the most recently seen', () => {
    const grouping = new ErrorGrouping();
    grouping.add(letter({ error: 'old', deadLetteredAt: minutesAgo(60) }));
    grouping.add(letter({ error: 'new', deadLetteredAt: minutesAgo(5) }));
    expect(grouping.groups().map((g) => g.error)).toEqual(['Error: new', 'Error: old']);
  });
});
