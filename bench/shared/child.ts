/**
 * Entry of a contender's child process: reads the task from `argv[2]`, runs each workload in turn,
 * prints one `BENCH_RESULT <json>` line per workload and exits. A hard time bound makes the child
 * report the workloads it did not finish as failures and kill itself.
 *
 * With `task.slices` (quick mode's gate runs) each workload is measured that many times on one rig
 * (set up and warmed up once), one run each time the orchestrator writes a line to the child's
 * stdin, so that two children can take turns run by run, close in time; the rig is closed (and the
 * next workload's set up) on the line after its last run, and the child exits when its stdin closes
 * or its workloads are done. Each step has the time bound.
 */
import { createInterface } from 'node:readline';
import { peakRssMb } from './measure';
import {
  RESULT_PREFIX,
  SETTINGS_PREFIX,
  type ChildTask,
  type ContenderFactory,
  type WorkloadResult,
  type WorkloadSpec,
} from './protocol';
import { runSlices, runWorkload } from './workloads';

export function runChild(factory: ContenderFactory): void {
  const task = JSON.parse(process.argv[2] ?? '') as ChildTask;
  let reported = new Set<string>();
  const report = (result: WorkloadResult): void => {
    reported.add(result.workload);
    process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
  };

  let deadline: NodeJS.Timeout | undefined;
  /** The workloads a time-out fails: all of them, or the one being run when sliced. */
  let covering: readonly WorkloadSpec[] = task.workloads;
  const bound = (): void => {
    clearTimeout(deadline);
    deadline = setTimeout(() => {
      for (const spec of covering) {
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
  const lines = task.slices === undefined ? undefined : createInterface({ input: process.stdin });
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
    if (task.slices === undefined) {
      bound();
      for (const spec of task.workloads) {
        const result = await runWorkload(contender, task, spec);
        ok &&= result.ok;
        report(result);
      }
      return ok;
    }
    // Sliced: every step (a run, or closing a rig and setting up the next) starts on a go, bounded.
    const turn = async (): Promise<boolean> => {
      clearTimeout(deadline); // idle until the orchestrator says: no bound
      const more = await go();
      reported = new Set();
      if (more) bound();
      return more;
    };
    let more = await turn();
    for (const spec of task.workloads) {
      if (!more) break;
      covering = [spec];
      more = await runSlices(contender, task, spec, {
        slices: task.slices,
        turn,
        report: (result) => {
          ok &&= result.ok;
          report(result);
        },
      });
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
