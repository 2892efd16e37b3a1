import { PauseGates } from './pause-gates';

type Call = ['pause' | 'resume', string?];

/** After these calls, which of handlers a, b and c are paused. */
const CASES: Array<[string, Call[], string[]]> = [
  ['nothing', [], []],
  ['one by name', [['pause', 'a']], ['a']],
  ['every handler', [['pause']], ['a', 'b', 'c']],
  ['every handler but one resumed by name', [['pause'], ['resume', 'b']], ['a', 'c']],
  [
    'resumed by name, then every handler again',
    [['pause'], ['resume', 'b'], ['pause']],
    ['a', 'b', 'c'],
  ],
  ['one by name, then every handler resumed', [['pause', 'a'], ['pause', 'b'], ['resume']], []],
  [
    'resuming one that was not paused changes nothing',
    [
      ['pause', 'a'],
      ['resume', 'c'],
    ],
    ['a'],
  ],
  ['every handler resumed, then one paused', [['pause'], ['resume'], ['pause', 'c']], ['c']],
];

describe('PauseGates', () => {
  it.each(CASES)('%s', (_case, calls, paused) => {
    const gates = new PauseGates();
    for (const [call, name] of calls) gates[call](name);
    expect(['a', 'b', 'c'].filter((n) => gates.isPaused(n))).toEqual(paused);
    expect(gates.active).toBe(paused.length > 0);
  });

  it('lets waiting deliveries go on resume, and sends them back when the server closes', async () => {
    const gates = new PauseGates();
    gates.pause();
    const a = [gates.wait('a'), gates.wait('a')];
    const b = gates.wait('b');
    expect([gates.waitingFor('a'), gates.waitingFor('b')]).toEqual([2, 1]);
    gates.resume('a');
    await expect(Promise.all(a)).resolves.toEqual([true, true]);
    expect(gates.waitingFor('a')).toBe(0);
    gates.close();
    await expect(b).resolves.toBe(false);
    await expect(gates.wait('c')).resolves.toBe(false); // after close: back at once
  });
});
