import { CircuitBreaker, type CircuitChange, type CircuitState } from './circuit-breaker';

type Step = ['fail', number] | ['succeed'] | ['admit'] | ['half-open'];

/** Runs `steps` on a breaker of 3 failures in 1000 ms; each row: what a step returns and the state after it. */
function run(steps: Step[]): [string, CircuitChange | boolean | undefined, CircuitState][] {
  const breaker = new CircuitBreaker({ failures: 3, windowMs: 1000, openMs: 5000 });
  return steps.map((step) => {
    const [what] = step;
    const result =
      what === 'fail'
        ? breaker.failure(step[1])
        : what === 'succeed'
          ? breaker.success()
          : what === 'admit'
            ? breaker.admit()
            : (breaker.halfOpen(), undefined);
    return [what, result, breaker.state];
  });
}

describe('CircuitBreaker', () => {
  it.each<[string, Step[], [string, CircuitChange | boolean | undefined, CircuitState][]]>([
    [
      'opens on the 3rd failure within the window',
      [['fail', 0], ['fail', 400], ['fail', 900], ['admit']],
      [
        ['fail', undefined, 'closed'],
        ['fail', undefined, 'closed'],
        ['fail', 'opened', 'open'],
        ['admit', false, 'open'],
      ],
    ],
    [
      'forgets failures older than the window',
      [
        ['fail', 0],
        ['fail', 500],
        ['fail', 1000],
        ['fail', 1600],
      ],
      [
        ['fail', undefined, 'closed'],
        ['fail', undefined, 'closed'],
        // the one at 0 left the window at 1000
        ['fail', undefined, 'closed'],
        // 500 left it at 1500: 1000 and 1600 are 2
        ['fail', undefined, 'closed'],
      ],
    ],
    [
      'half-open admits one trial; its success closes',
      [
        ['fail', 0],
        ['fail', 1],
        ['fail', 2],
        ['half-open'],
        ['admit'],
        ['admit'],
        ['succeed'],
        ['admit'],
      ],
      [
        ['fail', undefined, 'closed'],
        ['fail', undefined, 'closed'],
        ['fail', 'opened', 'open'],
        ['half-open', undefined, 'half-open'],
        ['admit', true, 'half-open'],
        ['admit', false, 'half-open'],
        ['succeed', 'closed', 'closed'],
        ['admit', true, 'closed'],
      ],
    ],
    [
      "a trial's failure opens again at once",
      [['fail', 0], ['fail', 1], ['fail', 2], ['half-open'], ['admit'], ['fail', 3]],
      [
        ['fail', undefined, 'closed'],
        ['fail', undefined, 'closed'],
        ['fail', 'opened', 'open'],
        ['half-open', undefined, 'half-open'],
        ['admit', true, 'half-open'],
        ['fail', 'opened', 'open'],
      ],
    ],
    [
      'outcomes of runs admitted before it opened change nothing while open',
      [['fail', 0], ['fail', 1], ['fail', 2], ['succeed'], ['fail', 3]],
      [
        ['fail', undefined, 'closed'],
        ['fail', undefined, 'closed'],
        ['fail', 'opened', 'open'],
        ['succeed', undefined, 'open'],
        ['fail', undefined, 'open'],
      ],
    ],
    [
      'a success while closed keeps the failures counted (the window decides)',
      [['fail', 0], ['succeed'], ['fail', 10], ['fail', 20]],
      [
        ['fail', undefined, 'closed'],
        ['succeed', undefined, 'closed'],
        ['fail', undefined, 'closed'],
        ['fail', 'opened', 'open'],
      ],
    ],
  ])('%s', (_name, steps, expected) => {
    expect(run(steps)).toEqual(expected);
  });
});
