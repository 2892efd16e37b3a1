/**
 * `npm run bench:profile -- --only <contender id> --workload <name> [--messages N] [--heap]`: runs that one
 * child, as the bench runs it, with a CPU profile of its measured window only (the inspector's
 * sampling profiler started after the warm-up, stopped when the last message was handled: see
 * shared/window.ts), writes it to `dist/bench/profiles/<contender>-<workload>.cpuprofile` (open it
 * in Chrome DevTools, Performance > Load profile, or in VS Code) and prints where the time went:
 * self time per package (node internals, GC, @nestjs, amqplib, ioredis, nats, ...), per file of the
 * library, and the top 25 functions, in µs per message and % of the busy (not idle) time.
 *
 *   npm run bench:profile -- --only ours-classic --workload ff-256B-x1
 *   npm run bench:profile -- --only raw-rpc --workload rr-100 --messages 20000
 *
 * With `--heap`, an allocation profile instead (`.heapprofile`: Chrome DevTools, Memory > Load),
 * summarized the same way in bytes allocated per message, freed or not: what the garbage collector
 * pays for (see heap-profile.ts).
 *
 *   npm run bench:profile -- --only ours-classic --workload ff-256B-x1 --heap
 *
 * With `--bare-handlers`, the library's child runs without Nest's RPC pipeline (an experiment: see
 * experiments/bare-handlers.ts).
 *
 * Sizes are the full run's (20,000 messages, InMemoryBackend 10x) unless `--messages` says.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { probe, sweepBroker } from './broker';
import { ensureLibraryBuilt, LOG, prepareGolevelup, ROOT, runChild } from './children';
import { addCost, type CallFrame, costTables, packageOf, type SelfCost } from './frames';
import { type HeapProfile, summarizeHeap } from './heap-profile';
import * as plan from './plan';
import type { ChildTask } from './shared/protocol';

/** The parts of a V8 CPU profile (`Profiler.stop`) read here. */
interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The report of a CPU profile of `messages` messages, as lines. */
export function summarize(profile: CpuProfile, messages: number): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<string, SelfCost>();
  let at = profile.startTime;
  const stamps = profile.timeDeltas.map((d) => (at += d));
  for (let i = 0; i < profile.samples.length; i++) {
    const frame = byId.get(profile.samples[i]);
    if (!frame) continue;
    const us = (stamps[i + 1] ?? profile.endTime) - stamps[i];
    addCost(self, frame, Math.max(0, us));
  }
  const entries = [...self.values()];
  const idle = entries
    .filter((e) => packageOf(e.frame) === '(idle)')
    .reduce((s, e) => s + e.amount, 0);
  const total = entries.reduce((s, e) => s + e.amount, 0);
  const busy = Math.max(1, total - idle);
  return [
    `${messages.toLocaleString('en-US')} messages; ${(total / 1000).toFixed(0)} ms sampled, ${(busy / 1000).toFixed(0)} ms busy, ${(idle / 1000).toFixed(0)} ms idle (waiting on the broker): ${(busy / messages).toFixed(1)} µs busy per message`,
    '',
    ...costTables(entries, messages, {
      heading: 'µs/msg',
      digits: 2,
      whole: busy,
      ofWhole: '% busy',
      byPackage: 'self time by package',
      ranking: 'by self time',
    }),
  ];
}

interface Args {
  only: string;
  workload: string;
  messages?: number;
  /** `--heap`: an allocation profile instead of a CPU one. */
  heap: boolean;
  /** `--bare-handlers`: the experiment of experiments/bare-handlers.ts. */
  bareHandlers: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  let only: string | undefined;
  let workload: string | undefined;
  let messages: number | undefined;
  let heap = false;
  let bareHandlers = false;
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--heap') {
      heap = true;
      i--; // a flag without a value
    } else if (flag === '--bare-handlers') {
      bareHandlers = true;
      i--;
    } else if (flag === '--only') only = value;
    else if (flag === '--workload') workload = value;
    else if (flag === '--messages') messages = Number(value);
    else throw new Error(`unknown option ${flag} (see the comment at the top of bench/profile.ts)`);
  }
  if (!only || !workload)
    throw new Error(
      'usage: npm run bench:profile -- --only <contender id> --workload <name> [--messages N] [--heap] [--bare-handlers]',
    );
  if (messages !== undefined && !(messages >= 1))
    throw new Error('--messages takes a positive number');
  return { only, workload, messages, heap, bareHandlers };
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const defs = plan.contenders(['quorum', 'classic']);
  const def = defs.find((c) => c.id === o.only);
  if (!def) throw new Error(`no contender ${o.only}; one of: ${defs.map((c) => c.id).join(', ')}`);
  const specs = plan.workloads(plan.sizes(false, o.messages));
  const found = specs.find((w) => w.name === o.workload);
  if (!found)
    throw new Error(`no workload ${o.workload}; one of: ${specs.map((w) => w.name).join(', ')}`);
  const why = plan.runs(def, found)
    ? plan.notApplicable(def, found)
    : `${def.id} does not run ${found.kind}`;
  if (why) throw new Error(`${def.id} ${found.name}: ${why}`);
  const spec = o.messages === undefined ? plan.scaledFor(def, found, false) : found;
  const url = def.broker
    ? process.env[plan.BROKERS[def.broker].env] || plan.BROKERS[def.broker].url
    : '';
  if (def.broker)
    console.log(
      `${await probe(def.broker, url)} at ${url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@')}`,
    );
  if (plan.isLibrary(def)) ensureLibraryBuilt();
  if (def.kind === 'golevelup') prepareGolevelup();
  mkdirSync(join(ROOT, 'dist/bench'), { recursive: true });
  writeFileSync(LOG, `npm run bench:profile ${process.argv.slice(2).join(' ')}\n`);
  const extension = o.heap ? 'heapprofile' : 'cpuprofile';
  const profile = join(ROOT, 'dist/bench/profiles', `${def.id}-${spec.name}.${extension}`);
  const prefix = `bench-prof-${randomBytes(3).toString('hex')}`;
  const task: ChildTask = {
    contender: def.kind,
    queueType: def.queueType,
    broker: def.broker,
    url,
    prefix,
    timeLimitMs: plan.timeLimitMs([spec], false),
    stallMs: 20_000,
    workloads: [spec],
    requests: def.requests,
    profile,
    bareHandlers: o.bareHandlers && plan.isLibrary(def),
  };
  if (task.bareHandlers) {
    console.log(
      "EXPERIMENT (--bare-handlers): the library's handlers run without Nest's RPC pipeline",
    );
  }
  console.log(
    `profiling ${o.heap ? 'the allocations of ' : ''}${def.id} ${spec.name}: ${spec.messages.toLocaleString('en-US')} messages after ${spec.warmup ?? 0} warm-up...`,
  );
  const outcome = await runChild(def, task);
  if (def.broker) {
    const left = await sweepBroker(def.broker, url, `${prefix}-`).catch(() => undefined);
    if (left?.length) console.log(`WARNING: deleted leftovers: ${left.join(', ')}`);
  }
  const r = outcome.results[0];
  if (!r?.ok) {
    console.log(`FAILED: ${r?.error ?? `exited with code ${outcome.code} without a result`}`);
    for (const line of outcome.tail) console.log(`    | ${line}`);
    return 1;
  }
  const latency =
    r.p50Ms === undefined
      ? ''
      : `, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${(r.p99Ms ?? 0).toFixed(2)} ms`;
  console.log(
    `${Math.round(r.rate ?? 0).toLocaleString('en-US')} /s${latency}, CPU ${(r.cpuUs ?? 0).toFixed(1)} µs/msg, GC ${(r.gcUs ?? 0).toFixed(1)} µs/msg, peak RSS ${r.rssMb.toFixed(0)} MB (with the profiler running)`,
    `\nwrote ${profile.slice(ROOT.length + 1)}\n`,
  );
  const data = JSON.parse(readFileSync(profile, 'utf8')) as unknown;
  const lines = o.heap
    ? summarizeHeap(data as HeapProfile, spec.messages)
    : summarize(data as CpuProfile, spec.messages);
  for (const line of lines) console.log(line);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
