import { BackendErrorLog } from './backend-error-log';

/** A log with a hand-driven clock and timer: `at(ms)` reports an error at that time. */
function harness(burst = 2, windowMs = 1000) {
  const lines: string[] = [];
  let clock = 0;
  let timer: { run: () => void; due: number } | undefined;
  const log = new BackendErrorLog(
    (line) => lines.push(line),
    () => clock,
    (run, ms) => {
      timer = { run, due: clock + ms };
      return { cancel: () => (timer = undefined) };
    },
    burst,
    windowMs,
  );
  return {
    lines,
    at: (ms: number, message = `e@${ms}`) => {
      clock = ms;
      log.report(new Error(message));
    },
    /** Moves the clock to `ms`, running the timer if it is due. */
    tick: (ms: number) => {
      clock = ms;
      if (timer && timer.due <= ms) timer.run();
    },
  };
}

describe('BackendErrorLog', () => {
  it('logs every error while under the burst', () => {
    const h = harness();
    h.at(0);
    h.at(500);
    h.at(1500);
    expect(h.lines).toEqual(['e@0', 'e@500', 'e@1500']);
  });

  it('holds back what is over the burst and counts it when the window ends', () => {
    const h = harness();
    for (const ms of [0, 10, 20, 30, 40]) h.at(ms);
    expect(h.lines).toEqual(['e@0', 'e@10']);
    h.tick(999);
    expect(h.lines).toHaveLength(2);
    h.tick(1000);
    expect(h.lines).toEqual([
      'e@0',
      'e@10',
      '3 more backend error(s) in 1 s not logged (at most 2 are)',
    ]);
    h.at(1200);
    expect(h.lines.at(-1)).toBe('e@1200');
  });

  it('counts what was held when the next error opens a new window first', () => {
    const h = harness();
    for (const ms of [0, 1, 2]) h.at(ms);
    h.at(5000);
    expect(h.lines).toEqual([
      'e@0',
      'e@1',
      '1 more backend error(s) in 1 s not logged (at most 2 are)',
      'e@5000',
    ]);
  });
});
