/**
 * Entry of a contender's child process: reads the task from `argv[2]`, runs each workload in turn,
 * prints one `BENCH_RESULT <json>` line per workload and exits. A hard time bound makes the child
 * report the workloads it did not finish as failures and kill itself.
 */
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
  const reported = new Set<string>();
  const report = (result: WorkloadResult): void => {
    reported.add(result.workload);
    process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
  };

  const deadline = setTimeout(() => {
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

  const main = async (): Promise<boolean> => {
    const contender = factory(task);
    process.stdout.write(`${SETTINGS_PREFIX}${JSON.stringify(contender.settings)}\n`);
    let ok = true;
    for (const spec of task.workloads) {
      const result = await runWorkload(contender, task, spec);
      ok &&= result.ok;
      report(result);
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
