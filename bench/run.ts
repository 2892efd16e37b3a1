/**
 * `npm run bench`: every contender, each in its own child process, in alternating order, several
 * runs each; medians, ratios to raw amqplib on the same queue type, targets; written to
 * docs/benchmarks.md and docs/benchmarks.svg in full mode.
 *
 *   npm run bench                      # full: 3 runs of 20,000 messages, one 200,000-message backlog
 *   npm run bench -- --quick           # CI smoke test, under a minute, writes no docs
 *   npm run bench -- --runs 1 --messages 5000 --only raw,ours-quorum --workload ff-256B-x1,rr-seq
 *   options: --backlog-runs N (default 1)   --third-party-queues classic,quorum
 *            --in-flight N (the publish window of fire-and-forget and retry, default 1000)
 *            --write-docs   --no-docs   BROKER_URL=amqp://...
 *
 * Exits non-zero only when a contender failed to complete a workload or lost / mis-counted
 * messages, never because of a ratio.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { brokerVersion, redact, sweep } from './broker';
import { renderSvg } from './chart';
import { LOG, prepareGolevelup, ROOT, runChild, type ChildOutcome } from './children';
import * as plan from './plan';
import { aggregate, key, renderMarkdown, type Cell, type Results } from './report';
import type { ChildTask, QueueType, WorkloadResult, WorkloadSpec } from './shared/protocol';

interface Options {
  quick: boolean;
  runs: number;
  backlogRuns: number;
  messages?: number;
  inFlight?: number;
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
    backlogRuns: 1,
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
    else if (a === '--backlog-runs') o.backlogRuns = Number(value());
    else if (a === '--messages') o.messages = Number(value());
    else if (a === '--in-flight') o.inFlight = Number(value());
    else if (a === '--only') o.only.push(...list(value()));
    else if (a === '--workload') o.workloads.push(...list(value()));
    else if (a === '--write-docs') o.writeDocs = true;
    else if (a === '--no-docs') o.writeDocs = false;
    else if (a === '--third-party-queues') o.thirdParty = list(value()) as QueueType[];
    else throw new Error(`unknown option ${a} (see the comment at the top of bench/run.ts)`);
  }
  o.runs = runs ?? (o.quick ? 1 : 3);
  if (
    !(o.runs >= 1) ||
    (o.messages !== undefined && !(o.messages >= 1)) ||
    (o.inFlight !== undefined && !(o.inFlight >= 1))
  ) {
    throw new Error('--runs, --messages and --in-flight take a positive number');
  }
  return o;
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const startedAt = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const sizes = plan.sizes(o.quick, o.messages);
  const defs = plan.contenders(o.thirdParty).filter((c) => plan.selected(c, o.only));
  const specs = plan
    .workloads(sizes)
    .filter((w) => o.workloads.length === 0 || o.workloads.includes(w.name))
    .map((w) =>
      o.inFlight !== undefined && (w.kind === 'fire-and-forget' || w.kind === 'retry')
        ? { ...w, inFlight: o.inFlight }
        : w,
    );
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

  const loadStart = loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
  const runPrefix = `bench-${randomBytes(3).toString('hex')}`;
  let taskNo = 0;
  const collected = new Map<string, (WorkloadResult | undefined)[]>();
  const settings = new Map<string, readonly string[]>();
  const failures: string[] = [];

  const notes: string[] = [];
  const record = (def: plan.ContenderDef, spec: WorkloadSpec, result?: WorkloadResult): void => {
    const k = key(def.id, spec.name);
    collected.set(k, [...(collected.get(k) ?? []), result]);
  };

  /** One child for `workloads` of `def`: prints a line per workload, returns what it reported. */
  const child = async (
    def: plan.ContenderDef,
    workloads: WorkloadSpec[],
    prefix: string,
    label: string,
  ): Promise<ChildOutcome & { ok: boolean }> => {
    const task: ChildTask = {
      contender: def.kind,
      queueType: def.queueType,
      url: o.url,
      prefix,
      timeLimitMs: plan.timeLimitMs(workloads, o.quick),
      stallMs: o.quick ? 10_000 : 20_000,
      workloads,
    };
    const outcome = await runChild(def, task);
    if (outcome.settings) settings.set(def.id, outcome.settings);
    let ok = true;
    for (const spec of workloads) {
      const result = outcome.results.find((r) => r.workload === spec.name);
      const rate = Math.round(result?.rate ?? 0).toLocaleString('en-US');
      const what = result?.ok
        ? `${rate.padStart(9)} /s ${result.rssMb.toFixed(0).padStart(4)} MB`
        : `FAILED: ${result?.error ?? `exited with code ${outcome.code} without a result`}`;
      const name = `${spec.name}${spec.phase ? ` (${spec.phase})` : ''}`;
      console.log(`${label} ${name.padEnd(19)} ${def.id.padEnd(18)} ${what}`);
      if (!result?.ok) {
        ok = false;
        for (const line of outcome.tail) console.log(`    | ${line}`);
      }
    }
    if (!ok) await sweep(o.url, `${prefix}-`).catch(() => undefined);
    return { ...outcome, ok };
  };

  /**
   * Measures `specs` of `def` (a backlog as a fill child then a drain child) and records the
   * results. When the broker closed the connections from outside (CONNECTION_FORCED), the attempt
   * is run once more and the report says so; any other failure is final.
   */
  const measure = async (def: plan.ContenderDef, given: WorkloadSpec[], label: string) => {
    const specs = given.map((spec) => plan.scaledFor(def, spec, o.quick));
    for (let attempt = 1; ; attempt++) {
      const prefix = `${runPrefix}-${++taskNo}`;
      const backlog = !o.quick && specs[0].kind === 'backlog';
      let outcome = await child(
        def,
        backlog ? [{ ...specs[0], phase: 'fill' }] : specs,
        prefix,
        label,
      );
      if (backlog && outcome.ok) {
        outcome = await child(def, [{ ...specs[0], phase: 'drain' }], prefix, label);
      }
      const names = specs.map((s) => s.name).join(', ');
      if (!outcome.ok && outcome.forced && attempt === 1) {
        notes.push(
          `${def.id} ${names}: run again after the broker closed its connections from outside (CONNECTION_FORCED)`,
        );
        console.log(`    ${notes[notes.length - 1]}`);
        continue;
      }
      for (const spec of specs) {
        // A backlog's outcome is its drain's, or its fill's when the fill failed.
        const result = outcome.results.find((r) => r.workload === spec.name);
        record(def, spec, result);
        if (!result?.ok) {
          const cause = outcome.forced
            ? ' (the broker closed its connections from outside: CONNECTION_FORCED)'
            : '';
          failures.push(`${def.id} ${spec.name}: ${result?.error ?? 'no result'}${cause}`);
        }
      }
      return;
    }
  };

  if (o.quick) {
    // One child per contender runs all its workloads (the backlog fills and drains in it).
    for (const def of defs) {
      const mine = specs.filter((w) => !plan.notApplicable(def, w));
      if (mine.length > 0) await measure(def, mine, '[quick]');
    }
  } else {
    // The 200,000-message backlog is long: it runs in the first --backlog-runs runs only.
    const runsOf = (spec: WorkloadSpec): number =>
      spec.kind === 'backlog' ? Math.min(o.runs, o.backlogRuns) : o.runs;
    const total = specs.reduce((n, spec) => n + runsOf(spec), 0);
    let step = 0;
    for (let r = 0; r < o.runs; r++) {
      for (const spec of specs.filter((w) => r < runsOf(w))) {
        const label = `[run ${r + 1}/${o.runs}, ${++step}/${total}]`;
        // Alternating order: forwards on even runs, backwards on odd ones.
        for (const def of r % 2 === 0 ? defs : [...defs].reverse()) {
          if (!plan.notApplicable(def, spec)) await measure(def, [spec], label);
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
    backlogRuns: o.backlogRuns,
    quick: o.quick,
    notes,
    durationS: (Date.now() - started) / 1000,
    machine: {
      cpus: `${cpus().length} CPU cores (${cpus()[0]?.model ?? '?'})`,
      load: `load average ${loadStart} at the start, ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')} at the end`,
      node: process.version,
      broker,
      date: `${startedAt} UTC`,
      command: `npm run bench${argv ? ` -- ${argv}` : ''}`,
    },
  };
  console.log(`\n${renderMarkdown(results)}`);
  const raw = { ...results, cells: [...cells.entries()], settings: [...settings.entries()] };
  writeFileSync(join(ROOT, 'dist/bench/results.json'), JSON.stringify(raw, null, 1));
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
