import { persistenceWarning, type RedisPersistence } from './redis-persistence';

describe('persistenceWarning', () => {
  const URL = 'redis://app:***@redis:6379';
  it.each<[string, RedisPersistence, RegExp | undefined]>([
    ['AOF on', { aof: true }, undefined],
    ['AOF on, save points too', { aof: true, savePoints: '3600 1' }, undefined],
    [
      'AOF off, no save points',
      { aof: false, savePoints: '' },
      /^Redis at redis:\/\/app:\*\*\*@redis:6379 persists nothing \(appendonly no, no save points\): a restart or crash of Redis loses every message.*confirmed publishes included\. Turn AOF on: 'appendonly yes'/,
    ],
    [
      'AOF off, RDB snapshots only',
      { aof: false, savePoints: '3600 1 300 100' },
      /only takes RDB snapshots \(save 3600 1 300 100\).*loses every message written since the last snapshot.*Turn AOF on/,
    ],
    [
      'AOF off, save points unknown (CONFIG refused)',
      { aof: false },
      /AOF off \(appendonly no\), and its RDB save points could not be read.*Turn AOF on/,
    ],
  ])('%s', (_, persistence, warning) => {
    const said = persistenceWarning(persistence, URL);
    if (warning === undefined) expect(said).toBeUndefined();
    else expect(said).toMatch(warning);
  });
});
