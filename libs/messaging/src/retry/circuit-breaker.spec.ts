import {
  CircuitBreaker,
  type CircuitChange,
  type CircuitState,
  type CircuitTicket,
  type CircuitVerdict,
} from './circuit-breaker';

type Step = ['admit'] | ['half-open'] | ['record', CircuitTicket, CircuitVerdict, number];

type Row = [string, CircuitChange | CircuitTicket | undefined, CircuitState];

/** Runs `steps` on a breaker of 3 failures in 1000 ms; each row: what a step returned, the state after. */
function run(steps: Step[]): Row[] {
  const breaker = new CircuitBreaker({ failures: 3, windowMs: 1000, openMs: 5000 });
  return steps.map((step): Row => {
    if (step[0] === 'admit') return ['admit', breaker.admit(), breaker.state];
    if (step[0] === 'half-open')
      return ['half-open', (breaker.halfOpen(), undefined), breaker.state];
    const [, ticket, verdict, now] = step;
    return [`${ticket} ${verdict}`, breaker.record(ticket, verdict, now), breaker.state];
  });
}

const fail = (now: number): Step => ['record', 'run', 'failed', now];
const opened: Step[] = [fail(0), fail(1), fail(2)];
const openedRows: Row[] = [
  ['run failed', undefined, 'closed'],
  ['run failed', undefined, 'closed'],
  ['run failed', 'opened', 'open'],
];

describe('CircuitBreaker', () => {
  it.each<[string, Step[], Row[]]>([
    [
      'opens on the 3rd failure within the window, then admits nothing',
      [...opened, ['admit']],
      [...openedRows, ['admit', undefined, 'open']],
    ],
    [
      'forgets failures older than the window',
      [fail(0), fail(500), fail(1000), fail(1600)],
      [
        ['run failed', undefined, 'closed'],
        ['run failed', undefined, 'closed'],
        ['run failed', undefined, 'closed'], // the one at 0 left the window at 1000
        ['run failed', undefined, 'closed'], // 500 left it at 1500: 1000 and 1600 are 2
      ],
    ],
    [
      'ok and none verdicts of runs change nothing while closed',
      [fail(0), ['record', 'run', 'ok', 1], ['record', 'run', 'none', 2], fail(3), fail(4)],
      [
        ['run failed', undefined, 'closed'],
        ['run ok', undefined, 'closed'],
        ['run none', undefined, 'closed'],
        ['run failed', undefined, 'closed'],
        ['run failed', 'opened', 'open'],
      ],
    ],
    [
      'half-open admits one trial; its success closes',
      [...opened, ['half-open'], ['admit'], ['admit'], ['record', 'trial', 'ok', 10], ['admit']],
      [
        ...openedRows,
        ['half-open', undefined, 'half-open'],
        ['admit', 'trial', 'half-open'],
        ['admit', undefined, 'half-open'],
        ['trial ok', 'closed', 'closed'],
        ['admit', 'run', 'closed'],
      ],
    ],
    [
      "a trial's failure opens again",
      [...opened, ['half-open'], ['admit'], ['record', 'trial', 'failed', 10]],
      [
        ...openedRows,
        ['half-open', undefined, 'half-open'],
        ['admit', 'trial', 'half-open'],
        ['trial failed', 'opened', 'open'],
      ],
    ],
    [
      'a trial that says nothing (a malformed message) makes way for another trial',
      [...opened, ['half-open'], ['admit'], ['record', 'trial', 'none', 10], ['admit']],
      [
        ...openedRows,
        ['half-open', undefined, 'half-open'],
        ['admit', 'trial', 'half-open'],
        ['trial none', 'retrial', 'half-open'],
        ['admit', 'trial', 'half-open'],
      ],
    ],
    [
      'verdicts of runs admitted before it opened decide nothing, open or half-open',
      [
        ...opened,
        ['record', 'run', 'ok', 3],
        ['half-open'],
        ['record', 'run', 'ok', 4],
        ['record', 'run', 'failed', 5],
      ],
      [
        ...openedRows,
        ['run ok', undefined, 'open'],
        ['half-open', undefined, 'half-open'],
        ['run ok', undefined, 'half-open'],
        ['run failed', undefined, 'half-open'],
      ],
    ],
  ])('%s', (_name, steps, expected) => {
    expect(run(steps)).toEqual(expected);
  });
});
