/**
 * Child processes of the orchestrator: making sure the compiled library is current, preparing the
 * golevelup package, and running one child to its end (or killing it past its bound) while logging
 * everything it printed.
 */
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, statSync } from 'node:fs';
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

const LIBRARY = join(ROOT, 'libs/messaging');

/** The newest source file of the library (specs and fixtures aside), and its mtime. */
function newestSource(dir = join(LIBRARY, 'src')): { file: string; mtimeMs: number } {
  let newest = {
    file: join(LIBRARY, 'package.json'),
    mtimeMs: statSync(join(LIBRARY, 'package.json')).mtimeMs,
  };
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const candidate = entry.isDirectory()
      ? newestSource(path)
      : /\.(spec|fixture)\.ts$/.test(entry.name) || !entry.name.endsWith('.ts')
        ? undefined
        : { file: path, mtimeMs: statSync(path).mtimeMs };
    if (candidate && candidate.mtimeMs > newest.mtimeMs) newest = candidate;
  }
  return newest;
}

/**
 * The `ours` contenders run the compiled package (libs/messaging/dist), as an application does:
 * `npm run bench` builds it first; a bench started otherwise (`node dist/bench/bench/run.js`)
 * builds it here when it is missing or older than a source file, so that a run never measures a
 * stale build.
 */
export function ensureLibraryBuilt(): void {
  const built = join(LIBRARY, 'dist/index.js');
  const newest = newestSource();
  const stale = !existsSync(built)
    ? 'libs/messaging/dist is missing'
    : statSync(built).mtimeMs < newest.mtimeMs
      ? `libs/messaging/dist is older than ${newest.file.slice(ROOT.length + 1)}`
      : undefined;
  if (!stale) return;
  console.log(`${stale}: npm run build:lib...`);
  execFileSync('npm', ['run', '--silent', 'build:lib'], { cwd: ROOT, stdio: 'inherit' });
}

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

/** Runs one child to its end (its workloads once). */
export function runChild(def: ContenderDef, task: ChildTask): Promise<ChildOutcome> {
  return startChild(def, task).ended;
}

/** A child started with `task.slices`: it takes one step (one measured run) each time it is asked. */
export interface LiveChild {
  /** Its next run: its result, or undefined when the child ended first. */
  next(): Promise<WorkloadResult | undefined>;
  /** Closes its stdin (it exits after the repeat it is running, if any). */
  close(): Promise<ChildOutcome>;
  readonly ended: Promise<ChildOutcome>;
  /** What it reported and printed so far. */
  readonly outcome: ChildOutcome;
}

export function startChild(def: ContenderDef, task: ChildTask): LiveChild {
  const started = Date.now();
  const live = task.slices !== undefined;
  const preload = task.bareHandlers
    ? ['--require', join(__dirname, 'experiments/bare-handlers.js')]
    : [];
  const child = spawn(process.execPath, [...preload, join(ROOT, def.entry), JSON.stringify(task)], {
    cwd: ROOT,
    stdio: [live ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  const outcome: ChildOutcome = { results: [], tail: [], code: null, forced: false, seconds: 0 };
  const names = task.workloads.map((w) => `${w.name}${w.phase ? `:${w.phase}` : ''}`);
  const times = live ? ` x${task.slices}` : '';
  appendFileSync(LOG, `\n== ${def.id} ${names.join(',')}${times} ${task.prefix}\n`);
  let onResult: (() => void) | undefined;
  const onLine = (line: string): void => {
    if (line.includes('CONNECTION_FORCED')) outcome.forced = true;
    if (line.startsWith(RESULT_PREFIX)) {
      outcome.results.push(JSON.parse(line.slice(RESULT_PREFIX.length)) as WorkloadResult);
      onResult?.();
    } else if (line.startsWith(SETTINGS_PREFIX)) {
      outcome.settings = JSON.parse(line.slice(SETTINGS_PREFIX.length)) as string[];
    } else {
      appendFileSync(LOG, `${line}\n`);
      outcome.tail = [...outcome.tail.slice(-11), line];
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  // The bound of one step, from each request (the child idles while its partner runs).
  let killer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(killer);
    killer = setTimeout(() => child.kill('SIGKILL'), task.timeLimitMs + 15_000);
  };
  if (!live) arm();
  let exited = false;
  const ended = new Promise<ChildOutcome>((resolvePromise) =>
    child.on('close', (code) => {
      exited = true;
      clearTimeout(killer);
      outcome.code = code;
      outcome.seconds = (Date.now() - started) / 1000;
      appendFileSync(LOG, `-- ${def.id}: ${outcome.seconds.toFixed(1)} s, exit ${code}\n`);
      onResult?.();
      resolvePromise(outcome);
    }),
  );
  return {
    ended,
    outcome,
    next: () => {
      const from = outcome.results.length;
      if (exited) return Promise.resolve(undefined);
      arm();
      child.stdin?.write('go\n');
      return new Promise((resolvePromise) => {
        onResult = () => {
          if (outcome.results.length === from && !exited) return;
          onResult = undefined;
          clearTimeout(killer);
          resolvePromise(outcome.results[from]);
        };
      });
    },
    close: () => {
      child.stdin?.end();
      return ended;
    },
  };
}
