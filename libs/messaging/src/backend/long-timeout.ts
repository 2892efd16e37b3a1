/** The longest timeout Node keeps (a longer one fires at once): about 24.8 days. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Runs `task` after `delayMs`, however long: a delay past what one Node timer holds waits in several,
 * one after the other. Unref'd unless `keepsProcessAlive`. Returns what cancels it.
 */
export function longTimeout(
  delayMs: number,
  task: () => void,
  keepsProcessAlive = false,
): () => void {
  let timer: NodeJS.Timeout;
  const wait = (left: number): void => {
    timer = setTimeout(
      () => (left > MAX_TIMER_MS ? wait(left - MAX_TIMER_MS) : task()),
      Math.min(left, MAX_TIMER_MS),
    );
    if (!keepsProcessAlive) timer.unref();
  };
  wait(delayMs);
  return () => clearTimeout(timer);
}
