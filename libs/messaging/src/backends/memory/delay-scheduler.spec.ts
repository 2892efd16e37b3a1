import { REAL_TIMERS } from './delay-scheduler';

describe('REAL_TIMERS', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('runs a task after a delay longer than one timer holds (24.8 days), not at once', () => {
    const task = jest.fn();
    const thirtyDays = 30 * 86_400_000;
    REAL_TIMERS.schedule(thirtyDays, task);
    jest.advanceTimersByTime(2 ** 31 - 1);
    expect(task).not.toHaveBeenCalled();
    jest.advanceTimersByTime(thirtyDays - (2 ** 31 - 1) - 1);
    expect(task).not.toHaveBeenCalled();
    jest.advanceTimersByTime(1);
    expect(task).toHaveBeenCalledTimes(1);
  });

  it('runs a short task once, after its delay', () => {
    const task = jest.fn();
    REAL_TIMERS.schedule(1_500, task);
    jest.advanceTimersByTime(1_499);
    expect(task).not.toHaveBeenCalled();
    jest.advanceTimersByTime(1);
    expect(task).toHaveBeenCalledTimes(1);
  });
});
