/**
 * `npm run bench`: every contender, each in its own child process, in alternating order, several
 * runs each; medians, ratios to raw amqplib on the same queue type, targets; written to
 * docs/benchmarks.md and docs/benchmarks.svg in full mode.
 *
 *   npm run bench                      # full: 3 runs, 20,000 messages, 200,000-message backlog
 *   npm run bench -- --quick           # CI smoke test, under a minute, writes no docs
 *   npm run bench -- --runs 1 --messages 5000 --only raw,ours-quorum --workload ff-256B-x1,rr-seq
 *   options: --third-party-queues classic,quorum   --write-docs   --no-docs   BROKER_URL=amqp://...
 *
 * Exits non-zero only when a contender failed to complete a workload or lost / mis-counted
 * messages, never because of a ratio.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { brokerVersion, redact, sweep } from './broker';
import { renderSvg } from './chart';
import * as plan from './plan';
import { aggregate, key, renderMarkdown, type Cell, type Results } from './report';
import {
  RESULT_PREFIX,
  SETTINGS_PREFIX,
  type ChildTask,
  type QueueType,
  type WorkloadResult,
  type WorkloadSpec,
} from './shared/protocol';

const ROOT = resolve(__dirname, '../../..'); // dist/bench/bench/run.js -> the repository
const LOG = join(ROOT, 'dist/bench/bench.log');

interface Options {
  quick: boolean;
  runs: number;
  messages?: number;
  only: string[];
  workloads: string[];
  writeDocs?: boolean;
  thirdParty: QueueType[];
  url: string;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    quick: false,
    runs: 3,
    only: [],
    workloads: [],
    thirdParty: ['classic'],
    url: process.env.BROKER_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
  };
  let runs: number | undefined;
  const list = (v: string | undefined): string[] => (v ?? '').split(',').filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => argv[++i] ?? '';
    if (a === '--quick') o.quick = true;
    else if (a === '--runs') runs = Number(value());
    else if (a === '--messages') o.messages = Number(value());
    else if (a === '--only') o.only.push(...list(value()));
    else if (a === '--workload') o.workloads.push(...list(value()));
    else if (a === '--write-docs') o.writeDocs = true;
    else if (a === '--no-docs') o.writeDocs = false;
    else if (a === '--third-party-queues') o.thirdParty = list(value()) as QueueType[];
    else throw new Error(`unknown option ${a} (see the comment at the top of bench/run.ts)`);
  }
  o.runs = runs ?? (o.quick ? 1 : 3);
  if (!(o.runs >= 1) || (o.messages !== undefined && !(o.messages >= 1))) {
    throw new Error('--runs and --messages take a positive number');
  }
  return o;
}

/** Installs (npm ci, when missing or older than its lock) and compiles the golevelup package. */
function prepareGolevelup(): void {
  const dir = join(ROOT, plan.GOLEVELUP_DIR);
  const installed = join(dir, 'node_modules/.package-lock.json');
  if (
    !existsSync(installed) ||
    statSync(installed).mtimeMs < statSync(join(dir, 'package-lock.json')).mtimeMs
  ) {
    console.log(`installing ${plan.GOLEVELUP_DIR} (NestJS 11 + @golevelup/nestjs-rabbitmq)...`);
    execFileSync('npm', ['ci', '--prefix', dir, '--no-audit', '--no-fund'], { stdio: 'inherit' });
  }
  const tsc = require.resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], { stdio: 'inherit' });
}

interface ChildOutcome {
  results: WorkloadResult[];
  settings?: string[];
  tail: string[];
  code: number | null;
}

/** Runs one child to its end (or kills it past its bound), logging everything it printed. */
function runChild(def: plan.ContenderDef, task: ChildTask): Promise<ChildOutcome> {
  const child = spawn(process.execPath, [join(ROOT, def.entry), JSON.stringify(task)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const outcome: ChildOutcome = { results: [], tail: [], code: null };
  appendFileSync(
    LOG,
    `\n== ${def.id} ${task.workloads.map((w) => w.name).join(',')} ${task.prefix}\n`,
  );
  const onLine = (line: string): void => {
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
      resolvePromise(outcome);
    }),
  );
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const sizes = { ...(o.quick ? plan.QUICK : plan.FULL) };
  if (o.messages) sizes.messages = o.messages;
  const defs = plan.contenders(o.thirdParty).filter((c) => plan.selected(c, o.only));
  const specs = plan
    .workloads(sizes)
    .filter((w) => o.workloads.length === 0 || o.workloads.includes(w.name));
  if (defs.length === 0 || specs.length === 0)
    throw new Error('--only/--workload selected nothing');

  let broker: string;
  try {
    broker = await brokerVersion(o.url);
  } catch (error) {
    throw new Error(`RabbitMQ does not answer at ${redact(o.url)}: ${String(error)}`, {
      cause: error,
    });
  }
  if (defs.some((c) => c.kind === 'golevelup')) prepareGolevelup();
  mkdirSync(join(ROOT, 'dist/bench'), { recursive: true });
  writeFileSync(LOG, `npm run bench ${process.argv.slice(2).join(' ')}\n`);

  const runPrefix = `bench-${randomBytes(3).toString('hex')}`;
  let taskNo = 0;
  const collected = new Map<string, (WorkloadResult | undefined)[]>();
  const settings = new Map<string, readonly string[]>();
  const failures: string[] = [];

  /** One child for `workloads` of `def`; records its results (undefined when it never reported). */
  const run = async (
    def: plan.ContenderDef,
    workloads: WorkloadSpec[],
    prefix: string,
    label: string,
  ): Promise<boolean> => {
    const task: ChildTask = {
      contender: def.kind,
      queueType: def.queueType,
      url: o.url,
      prefix,
      timeLimitMs: plan.timeLimitMs(workloads, o.quick),
      stallMs: o.quick ? 10_000 : 20_000,
      workloads,
    };
    const t0 = Date.now();
    const outcome = await runChild(def, task);
    if (outcome.settings) settings.set(def.id, outcome.settings);
    let ok = true;
    for (const spec of workloads) {
      const result = outcome.results.find((r) => r.workload === spec.name);
      const k = key(def.id, spec.name);
      if (spec.phase !== 'fill') collected.set(k, [...(collected.get(k) ?? []), result]);
      const what = result?.ok
        ? `${Math.round(result.rate ?? 0)
            .toLocaleString('en-US')
            .padStart(9)} /s ${result.rssMb.toFixed(0).padStart(4)} MB`
        : `FAILED: ${result?.error ?? `exited with code ${outcome.code} without a result`}`;
      const phase = spec.phase ? ` (${spec.phase})` : '';
      console.log(`${label} ${`${spec.name}${phase}`.padEnd(19)} ${def.id.padEnd(18)} ${what}`);
      if (!result?.ok) {
        ok = false;
        failures.push(`${def.id} ${spec.name}${phase}: ${result?.error ?? 'no result'}`);
        for (const line of outcome.tail) console.log(`    | ${line}`);
      }
    }
    if (!ok) await sweep(o.url, `${prefix}-`).catch(() => undefined);
    const seconds = ((Date.now() - t0) / 1000).toFixed(1);
    appendFileSync(LOG, `-- ${def.id}: ${seconds} s, exit ${outcome.code}\n`);
    return ok;
  };

  if (o.quick) {
    // One child per contender runs all its workloads (the backlog fills and drains in it).
    for (const def of defs) {
      const mine = specs.filter((w) => !plan.notApplicable(def, w));
      if (mine.length > 0) await run(def, mine, `${runPrefix}-${++taskNo}`, '[quick]');
    }
  } else {
    const total = o.runs * specs.length;
    let step = 0;
    for (let r = 0; r < o.runs; r++) {
      for (const spec of specs) {
        const label = `[run ${r + 1}/${o.runs}, ${++step}/${total}]`;
        // Alternating order: forwards on even runs, backwards on odd ones.
        for (const def of r % 2 === 0 ? defs : [...defs].reverse()) {
          if (plan.notApplicable(def, spec)) continue;
          const prefix = `${runPrefix}-${++taskNo}`;
          if (spec.kind !== 'backlog') await run(def, [spec], prefix, label);
          else if (await run(def, [{ ...spec, phase: 'fill' }], prefix, label)) {
            await run(def, [{ ...spec, phase: 'drain' }], prefix, label);
          } else
            collected.set(key(def.id, spec.name), [
              ...(collected.get(key(def.id, spec.name)) ?? []),
              undefined,
            ]);
        }
      }
    }
  }

  const leftovers = await sweep(o.url, `${runPrefix}-`);
  const cells = new Map<string, Cell>();
  for (const def of defs) {
    for (const spec of specs) {
      const na = plan.notApplicable(def, spec);
      cells.set(
        key(def.id, spec.name),
        aggregate(def, spec, collected.get(key(def.id, spec.name)) ?? [], na),
      );
    }
  }
  const argv = process.argv.slice(2).join(' ');
  const results: Results = {
    contenders: defs,
    workloads: specs,
    cells,
    settings,
    runs: o.runs,
    durationS: (Date.now() - started) / 1000,
    machine: {
      cpus: `${cpus().length} CPU cores (${cpus()[0]?.model ?? '?'})`,
      node: process.version,
      broker,
      date: `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
      command: `npm run bench${argv ? ` -- ${argv}` : ''}`,
    },
  };
  console.log(`\n${renderMarkdown(results)}`);
  if (leftovers === undefined)
    console.log('rabbitmqctl not available: queues of this run not checked');
  else if (leftovers.length > 0) console.log(`WARNING: deleted leftovers: ${leftovers.join(', ')}`);
  else console.log(`rabbitmqctl: no queue or exchange of this run (${runPrefix}-*) is left`);

  const selectedAll = o.only.length === 0 && o.workloads.length === 0;
  if (o.writeDocs ?? (!o.quick && selectedAll)) {
    mkdirSync(join(ROOT, 'docs'), { recursive: true });
    writeFileSync(join(ROOT, 'docs/benchmarks.svg'), renderSvg(results));
    writeFileSync(join(ROOT, 'docs/benchmarks.md'), renderMarkdown(results, 'benchmarks.svg'));
    console.log('wrote docs/benchmarks.md and docs/benchmarks.svg');
  }
  console.log(
    `${o.quick ? 'quick ' : ''}bench took ${results.durationS.toFixed(0)} s; log: ${LOG}`,
  );
  if (failures.length > 0) {
    console.log(`\n${failures.length} failure(s):\n  ${failures.join('\n  ')}`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
