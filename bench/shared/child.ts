/**
 * Entry of a contender's child process: reads the task from `argv[2]`, runs each workload in turn,
 * prints one `BENCH_RESULT <json>` line per workload and exits. A hard time bound makes the child
 * report the workloads it did not finish as failures and kill itself.
 *
 * With `task.repeats` (quick mode's gate runs) the child runs its workloads that many times, each
 * time when the orchestrator writes a line to its stdin, so that two children can take turns
 * without paying their start-up again; it exits after the last repeat, or when its stdin closes.
 * Each repeat has the time bound, and names of its own.
 */
import { createInterface } from 'node:readline';
import { peakRssMb } from './measure';
import {
  RESULT_PREFIX,
  SETTINGS_PREFIX,
  type ChildTask,
  type ContenderFactory,
  type WorkloadResult,
} from './protocol';
import { runWorkload } from './workloads';

export function runChild(factory: ContenderFactory): void {
  const task = JSON.parse(process.argv[2] ?? '') as ChildTask;
  let reported = new Set<string>();
  const report = (result: WorkloadResult): void => {
    reported.add(result.workload);
    process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
  };

  let deadline: NodeJS.Timeout | undefined;
  const bound = (): void => {
    clearTimeout(deadline);
    deadline = setTimeout(() => {
      for (const spec of task.workloads) {
        if (reported.has(spec.name)) continue;
        report({
          workload: spec.name,
          ok: false,
          error: `time limit of ${Math.round(task.timeLimitMs / 1000)} s exceeded: killed itself`,
          rssMb: peakRssMb(),
          counts: {
            expected: spec.messages,
            published: 0,
            confirmed: 0,
            receivedUnique: 0,
            duplicates: 0,
            unknown: 0,
            injectedFailures: 0,
          },
        });
      }
      process.exit(3);
    }, task.timeLimitMs);
  };

  /** Resolves on each line of stdin (the orchestrator's "go"), false once stdin closed. */
  const lines = task.repeats === undefined ? undefined : createInterface({ input: process.stdin });
  const queued: string[] = [];
  const waiting: ((go: boolean) => void)[] = [];
  let closed = false;
  lines?.on('line', (line) => (waiting.length > 0 ? waiting.shift()!(true) : queued.push(line)));
  lines?.on('close', () => {
    closed = true;
    for (const resolve of waiting.splice(0)) resolve(false);
  });
  const go = (): Promise<boolean> => {
    if (queued.shift() !== undefined) return Promise.resolve(true);
    if (closed) return Promise.resolve(false);
    return new Promise((resolve) => waiting.push(resolve));
  };

  const main = async (): Promise<boolean> => {
    const contender = factory(task);
    process.stdout.write(`${SETTINGS_PREFIX}${JSON.stringify(contender.settings)}\n`);
    let ok = true;
    const repeats = task.repeats ?? 1;
    for (let r = 0; r < repeats; r++) {
      if (task.repeats !== undefined && !(await go())) break;
      reported = new Set();
      bound();
      const named = task.repeats === undefined ? task : { ...task, prefix: `${task.prefix}-r${r}` };
      for (const spec of task.workloads) {
        const result = await runWorkload(contender, named, spec);
        ok &&= result.ok;
        report(result);
      }
      clearTimeout(deadline); // idle until the next repeat: no bound
    }
    return ok;
  };

  main().then(
    (ok) => {
      clearTimeout(deadline);
      process.exit(ok ? 0 : 1);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(2);
    },
  );
}
