/**
 * Child processes of the orchestrator: preparing the golevelup package, and running one child to
 * its end (or killing it past its bound) while logging everything it printed.
 */
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { GOLEVELUP_DIR, type ContenderDef } from './plan';
import {
  RESULT_PREFIX,
  SETTINGS_PREFIX,
  type ChildTask,
  type WorkloadResult,
} from './shared/protocol';

export const ROOT = resolve(__dirname, '../../..'); // dist/bench/bench/*.js -> the repository
export const LOG = join(ROOT, 'dist/bench/bench.log');

/** Installs (`npm ci`, when missing or older than its lock) and compiles the golevelup package. */
export function prepareGolevelup(): void {
  const dir = join(ROOT, GOLEVELUP_DIR);
  const installed = join(dir, 'node_modules/.package-lock.json');
  if (
    !existsSync(installed) ||
    statSync(installed).mtimeMs < statSync(join(dir, 'package-lock.json')).mtimeMs
  ) {
    console.log(`installing ${GOLEVELUP_DIR} (NestJS 11 + @golevelup/nestjs-rabbitmq)...`);
    execFileSync('npm', ['ci', '--prefix', dir, '--no-audit', '--no-fund'], { stdio: 'inherit' });
  }
  const tsc = require.resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], { stdio: 'inherit' });
}

export interface ChildOutcome {
  results: WorkloadResult[];
  settings?: string[];
  /** The last lines it printed, shown when it failed. */
  tail: string[];
  code: number | null;
  /**
   * The broker closed its connections with CONNECTION_FORCED: something outside the benchmark
   * (`rabbitmqctl close_all_connections`, e.g. a resilience test) did it, not the contender.
   */
  forced: boolean;
  seconds: number;
}

export function runChild(def: ContenderDef, task: ChildTask): Promise<ChildOutcome> {
  const started = Date.now();
  const child = spawn(process.execPath, [join(ROOT, def.entry), JSON.stringify(task)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const outcome: ChildOutcome = { results: [], tail: [], code: null, forced: false, seconds: 0 };
  const names = task.workloads.map((w) => `${w.name}${w.phase ? `:${w.phase}` : ''}`);
  appendFileSync(LOG, `\n== ${def.id} ${names.join(',')} ${task.prefix}\n`);
  const onLine = (line: string): void => {
    if (line.includes('CONNECTION_FORCED')) outcome.forced = true;
    if (line.startsWith(RESULT_PREFIX)) {
      outcome.results.push(JSON.parse(line.slice(RESULT_PREFIX.length)) as WorkloadResult);
    } else if (line.startsWith(SETTINGS_PREFIX)) {
      outcome.settings = JSON.parse(line.slice(SETTINGS_PREFIX.length)) as string[];
    } else {
      appendFileSync(LOG, `${line}\n`);
      outcome.tail = [...outcome.tail.slice(-11), line];
    }
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  createInterface({ input: child.stderr }).on('line', onLine);
  const killer = setTimeout(() => child.kill('SIGKILL'), task.timeLimitMs + 15_000);
  return new Promise((resolvePromise) =>
    child.on('close', (code) => {
      clearTimeout(killer);
      outcome.code = code;
      outcome.seconds = (Date.now() - started) / 1000;
      appendFileSync(LOG, `-- ${def.id}: ${outcome.seconds.toFixed(1)} s, exit ${code}\n`);
      resolvePromise(outcome);
    }),
  );
}
