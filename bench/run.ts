/**
 * `npm run bench`: every contender, each in its own child process, in alternating order, several
 * runs each; medians, ratios to the reference of the same run (raw amqplib on the same queue type,
 * its volatile RPC for requests, raw ioredis on Redis Streams, raw nats.js on NATS JetStream), CPU
 * and GC per message, targets and the regression gate; in full mode written to docs/benchmarks.md,
 * docs/benchmarks.svg and the headline table of README.md. `npm run bench` builds the library
 * first (`npm run build:lib`): the `ours` contenders run the compiled package, as users do.
 *
 *   npm run bench                      # full: 3 runs of 20,000 messages, one 200,000-message backlog
 *   npm run bench -- --quick           # CI smoke test and gate, about 3 minutes, writes no docs
 *   npm run bench -- --runs 1 --messages 5000 --only raw,ours-quorum --workload ff-256B-x1,rr-seq
 *   npm run bench -- --quick --only redis,nats      # a broker selects its raw and ours contenders
 *   npm run bench -- --bare-handlers --only redis --workload ff-256B-x4   # an experiment: what Nest's
 *            RPC pipeline costs (bench/experiments/bare-handlers.ts); never the docs nor the gate
 *   options: --backlog-runs N (default 1)   --third-party-queues classic,quorum
 *            --in-flight N (the publish window of fire-and-forget and retry, default 1000)
 *            --gate-messages N (quick mode: messages of a gated run, default 2000)
 *            --no-gate (print the gate, do not fail on it)   --write-docs   --no-docs
 *   brokers: BROKER_URL=amqp://... (RabbitMQ)   REDIS_URL=redis://...   NATS_URL=nats://...
 *   a CPU profile of one workload: npm run bench:profile (bench/profile.ts)
 *
 * Quick mode runs each contender's workloads once with small counts in one child, except the gated
 * ones (plan.ts `GATES`): those run `--runs` times (default 7) with counts of their own, the
 * reference and the contender taking turns run by run (gate.ts).
 *
 * A broker that does not answer does not stop the bench: its contenders are reported as not run,
 * with the reason, and no docs are written (unless --write-docs). Exits non-zero when a contender
 * failed to complete a workload or lost / mis-counted messages, in --quick mode when a gate is not
 * met (its ratio to raw in this run fell past its floor; unless --no-gate; other modes print the
 * gate without judging it, their sizes are the caller's), and, with CI=true in --quick mode (CI's
 * smoke test), when a broker did not answer.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { probe, redact, sweepBroker } from './broker';
import {
  ensureLibraryBuilt,
  LOG,
  prepareGolevelup,
  ROOT,
  runChild,
  startChild,
  type ChildOutcome,
} from './children';
import { commitOf, writeDocs } from './docs';
import { activeGates, gateGroups, judge } from './gate';
import * as plan from './plan';
import { aggregate, key, renderMarkdown, type Cell, type Results } from './report';
import { parseArgs } from './options';
import type { Broker, ChildTask, WorkloadResult, WorkloadSpec } from './shared/protocol';

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const startedAt = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const commit = commitOf();
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
  if (defs.some((c) => plan.isLibrary(c) && !notRun(c))) {
    ensureLibraryBuilt();
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

  const taskFor = (
    def: plan.ContenderDef,
    workloads: WorkloadSpec[],
    prefix: string,
    slices?: number,
  ): ChildTask => ({
    contender: def.kind,
    queueType: def.queueType,
    broker: def.broker,
    url: def.broker ? o.urls[def.broker] : '',
    prefix,
    timeLimitMs: plan.timeLimitMs(workloads, o.quick),
    stallMs: o.quick ? 10_000 : 20_000,
    workloads,
    requests: def.requests,
    slices,
    bareHandlers: o.bareHandlers && plan.isLibrary(def),
  });

  /** Prints a line per workload of `def` from what its child reported; false when one failed. */
  const show = (
    def: plan.ContenderDef,
    workloads: WorkloadSpec[],
    results: readonly WorkloadResult[],
    outcome: ChildOutcome,
    label: string,
  ): boolean => {
    if (outcome.settings) settings.set(def.id, outcome.settings);
    let ok = true;
    for (const spec of workloads) {
      const result = results.find((r) => r.workload === spec.name);
      const rate = Math.round(result?.rate ?? 0).toLocaleString('en-US');
      const what = result?.ok
        ? `${rate.padStart(9)} /s ${(result.cpuUs ?? 0).toFixed(0).padStart(5)} µs CPU ${result.rssMb.toFixed(0).padStart(4)} MB`
        : `FAILED: ${result?.error ?? `exited with code ${outcome.code} without a result`}`;
      const name = `${spec.name}${spec.phase ? ` (${spec.phase})` : ''}`;
      console.log(`${label} ${name.padEnd(19)} ${def.id.padEnd(23)} ${what}`);
      if (!result?.ok) {
        ok = false;
        for (const line of outcome.tail) console.log(`    | ${line}`);
      }
    }
    return ok;
  };

  /** One child for `workloads` of `def`: prints a line per workload, returns what it reported. */
  const child = async (
    def: plan.ContenderDef,
    workloads: WorkloadSpec[],
    prefix: string,
    label: string,
  ): Promise<ChildOutcome & { ok: boolean }> => {
    const outcome = await runChild(def, taskFor(def, workloads, prefix));
    const ok = show(def, workloads, outcome.results, outcome, label);
    if (!ok && def.broker) {
      await sweepBroker(def.broker, o.urls[def.broker], `${prefix}-`).catch(() => undefined);
    }
    return { ...outcome, ok };
  };

  /**
   * Quick mode's gate runs of one group (a reference and the contenders gated against it): each
   * member a child of its own, started once, its rig of each workload set up once; then for each
   * workload, `o.runs` runs of it taken in turn, run by run (forwards, then backwards, ...), so that
   * the two figures of a pair are measured a moment apart. A failure ends the group's runs.
   */
  const gateGroup = async (
    group: { def: plan.ContenderDef; specs: WorkloadSpec[] }[],
  ): Promise<void> => {
    const members = group.map((m) => {
      const prefix = `${runPrefix}-${++taskNo}`;
      return { ...m, prefix, live: startChild(m.def, taskFor(m.def, m.specs, prefix, o.runs)) };
    });
    let ok = true;
    const workloads = [...new Set(members.flatMap((m) => m.specs))];
    for (const spec of workloads) {
      const taking = members.filter((m) => m.specs.includes(spec));
      for (let r = 0; r < o.runs && ok; r++) {
        for (const m of r % 2 === 0 ? taking : [...taking].reverse()) {
          const result = await m.live.next();
          const shown = result?.workload === spec.name ? [result] : [];
          ok = show(m.def, [spec], shown, m.live.outcome, `[gate ${r + 1}/${o.runs}]`);
          record(m.def, spec, shown[0]);
          if (!ok) {
            failures.push(`${m.def.id} ${spec.name}: ${result?.error ?? 'no result'}`);
            break;
          }
        }
      }
    }
    for (const m of members) {
      const outcome = await m.live.close();
      if (outcome.settings) settings.set(m.def.id, outcome.settings);
      if (!ok && m.def.broker) {
        await sweepBroker(m.def.broker, o.urls[m.def.broker], `${m.prefix}-`).catch(
          () => undefined,
        );
      }
    }
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

  const gates = activeGates(
    defs.filter((c) => !notRun(c)),
    specs,
  );
  const gateSpecs: WorkloadSpec[] = [];
  if (o.quick) {
    // The gated cells (each gate's contender and reference) run in the gate runs below only.
    const gated = new Set(
      gates.flatMap((g) => [key(g.contender, g.workload), key(g.reference, g.workload)]),
    );
    // One child per contender runs all its other workloads (the backlog fills and drains in it).
    for (const def of defs.filter((c) => !notRun(c))) {
      const mine = specs.filter(
        (w) => plan.runs(def, w) && !plan.notApplicable(def, w) && !gated.has(key(def.id, w.name)),
      );
      if (mine.length > 0) await measure(def, mine, '[quick]');
    }
    const sized = specs.map((w) => plan.gateSize(w, o.gateMessages));
    gateSpecs.push(...sized.filter((w) => gates.some((g) => g.workload === w.name)));
    for (const group of gateGroups(gates, defs, gateSpecs)) await gateGroup(group);
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
          if (plan.runs(def, spec) && !plan.notApplicable(def, spec) && !notRun(def)) {
            await measure(def, [spec], label);
          }
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
    for (const spec of specs.filter((w) => plan.runs(def, w))) {
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
  const partial: Omit<Results, 'gates'> = {
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
      commit,
      command: `npm run bench${argv ? ` -- ${argv}` : ''}`,
    },
    gateSpecs,
  };
  const results: Results = { ...partial, gates: judge({ ...partial, gates: [] }, gates) };
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
  if (o.writeDocs ?? (!o.quick && selectedAll && down.size === 0)) writeDocs(results);
  if (results.gates.length > 0) {
    const judged = o.quick && o.gate;
    const how = judged ? '' : o.quick ? '; --no-gate: not judged' : '; judged in --quick mode only';
    console.log(`\ngate (bench/plan.ts GATES${how}):`);
    for (const v of results.gates) console.log(`  ${v.line}`);
    if (judged) {
      failures.push(...results.gates.filter((v) => v.met === false).map((v) => v.line));
    }
  }
  if (o.bareHandlers) {
    console.log(
      "EXPERIMENT (--bare-handlers): the library's figures above were taken without Nest's RPC pipeline; they are not what users get",
    );
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
