/**
 * `npm run bench`: every contender, each in its own child process, in alternating order, several
 * runs each; medians, ratios to the raw client of the same broker (raw amqplib on the same queue
 * type, raw ioredis on Redis Streams, raw nats.js on NATS JetStream), targets; written to
 * docs/benchmarks.md and docs/benchmarks.svg in full mode.
 *
 *   npm run bench                      # full: 3 runs of 20,000 messages, one 200,000-message backlog
 *   npm run bench -- --quick           # CI smoke test, under two minutes, writes no docs
 *   npm run bench -- --runs 1 --messages 5000 --only raw,ours-quorum --workload ff-256B-x1,rr-seq
 *   npm run bench -- --quick --only redis,nats      # a broker selects its raw and ours contenders
 *   options: --backlog-runs N (default 1)   --third-party-queues classic,quorum
 *            --in-flight N (the publish window of fire-and-forget and retry, default 1000)
 *            --write-docs   --no-docs
 *   brokers: BROKER_URL=amqp://... (RabbitMQ)   REDIS_URL=redis://...   NATS_URL=nats://...
 *
 * A broker that does not answer does not stop the bench: its contenders are reported as not run,
 * with the reason, and no docs are written (unless --write-docs). Exits non-zero when a contender
 * failed to complete a workload or lost / mis-counted messages, and, with CI=true in --quick mode
 * (CI's smoke test), when a broker did not answer; never because of a ratio.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { probe, redact, sweepBroker } from './broker';
import { renderSvg } from './chart';
import { LOG, prepareGolevelup, ROOT, runChild, type ChildOutcome } from './children';
import * as plan from './plan';
import { aggregate, key, renderMarkdown, type Cell, type Results } from './report';
import type { Broker, ChildTask, QueueType, WorkloadResult, WorkloadSpec } from './shared/protocol';

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
  /** Each broker's URL (`BROKER_URL`, `REDIS_URL`, `NATS_URL`). */
  urls: Record<Broker, string>;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    quick: false,
    runs: 3,
    backlogRuns: 1,
    only: [],
    workloads: [],
    thirdParty: ['classic'],
    urls: {
      rabbitmq: process.env[plan.BROKERS.rabbitmq.env] || plan.BROKERS.rabbitmq.url,
      redis: process.env[plan.BROKERS.redis.env] || plan.BROKERS.redis.url,
      nats: process.env[plan.BROKERS.nats.env] || plan.BROKERS.nats.url,
    },
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

  // Each broker the selected contenders need, asked once; one that does not answer is reported.
  const versions = new Map<Broker, string>();
  const down = new Map<Broker, string>();
  const brokers = [...new Set(defs.map((c) => c.broker))].filter(
    (b): b is Broker => b !== undefined,
  );
  const answers = await Promise.allSettled(brokers.map((b) => probe(b, o.urls[b])));
  brokers.forEach((b, i) => {
    const answer = answers[i];
    if (answer.status === 'fulfilled') versions.set(b, answer.value);
    else {
      const error: unknown = answer.reason;
      const reason = error instanceof Error ? error.message : String(error);
      down.set(b, `${plan.BROKERS[b].label} does not answer at ${redact(o.urls[b])}: ${reason}`);
    }
  });
  const notRun = (def: plan.ContenderDef): string | undefined =>
    def.broker === undefined ? undefined : down.get(def.broker);
  for (const [b, reason] of down) {
    const ids = defs.filter((c) => c.broker === b).map((c) => c.id);
    console.log(`\n!!! ${reason}\n!!! NOT RUN: ${ids.join(', ')}\n`);
  }
  if (defs.some((c) => c.kind === 'golevelup' && !notRun(c))) prepareGolevelup();
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
      broker: def.broker,
      url: def.broker ? o.urls[def.broker] : '',
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
    if (!ok && def.broker) {
      await sweepBroker(def.broker, o.urls[def.broker], `${prefix}-`).catch(() => undefined);
    }
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
    for (const def of defs.filter((c) => !notRun(c))) {
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
          if (!plan.notApplicable(def, spec) && !notRun(def)) await measure(def, [spec], label);
        }
      }
    }
  }

  // What the run left on each broker that answered (nothing, unless a child died).
  const leftovers = new Map<Broker, string[] | undefined>();
  for (const b of brokers.filter((x) => versions.has(x))) {
    leftovers.set(
      b,
      await sweepBroker(b, o.urls[b], `${runPrefix}-`).catch((error: unknown) => [
        `(sweep failed: ${String(error)})`,
      ]),
    );
  }
  const cells = new Map<string, Cell>();
  for (const def of defs) {
    for (const spec of specs) {
      const na = plan.notApplicable(def, spec);
      const runs = collected.get(key(def.id, spec.name)) ?? [];
      cells.set(
        key(def.id, spec.name),
        aggregate(def, spec, runs, na, na ? undefined : notRun(def)),
      );
    }
  }
  const ciSmoke = o.quick && process.env.CI === 'true';
  for (const [b, reason] of down) {
    const what = `${defs
      .filter((c) => c.broker === b)
      .map((c) => c.id)
      .join(', ')} not run: ${reason}`;
    if (ciSmoke) failures.push(`${what} (CI=true: every broker must answer)`);
    else notes.push(what);
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
      broker: brokers
        .map((b) => versions.get(b) ?? `${plan.BROKERS[b].label} (not answering)`)
        .join(', '),
      date: `${startedAt} UTC`,
      command: `npm run bench${argv ? ` -- ${argv}` : ''}`,
    },
  };
  console.log(`\n${renderMarkdown(results)}`);
  const raw = { ...results, cells: [...cells.entries()], settings: [...settings.entries()] };
  writeFileSync(join(ROOT, 'dist/bench/results.json'), JSON.stringify(raw, null, 1));
  for (const [b, left] of leftovers) {
    const where = `${plan.BROKERS[b].label}: nothing of this run (${runPrefix}-*) is left`;
    if (left === undefined)
      console.log('rabbitmqctl not available: queues of this run not checked');
    else if (left.length > 0) console.log(`WARNING: deleted leftovers: ${left.join(', ')}`);
    else console.log(where);
  }
  for (const reason of down.values()) console.log(`!!! NOT RUN: ${reason}`);

  const selectedAll = o.only.length === 0 && o.workloads.length === 0;
  if (o.writeDocs === undefined && !o.quick && selectedAll && down.size > 0) {
    console.log('docs/benchmarks.md not written: a broker did not answer (--write-docs forces it)');
  }
  if (o.writeDocs ?? (!o.quick && selectedAll && down.size === 0)) {
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
