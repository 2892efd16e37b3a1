/**
 * Turns the runs into medians, ratios to the reference of the same run (raw amqplib on the same
 * queue type, its volatile RPC for requests, raw ioredis, raw nats.js), and the markdown report
 * (printed, and written to docs/benchmarks.md in full mode) with the issue's targets (targets.ts),
 * the gate's verdicts (gate.ts) and, for the README, a short table of the headline ratios.
 */
import type { Verdict } from './gate';
import { BROKERS, referenceOf, type ContenderDef } from './plan';
import { median } from './shared/measure';
import type { WorkloadResult, WorkloadSpec } from './shared/protocol';
import { cellTarget, int, mark, targets } from './targets';

export interface Cell {
  readonly contender: ContenderDef;
  readonly workload: WorkloadSpec;
  /** `not run`: its broker did not answer. */
  readonly status: 'ok' | 'failed' | 'n/a' | 'not run';
  readonly reason?: string;
  readonly runs: readonly WorkloadResult[];
  /** Medians over the runs; RSS is the highest peak of the runs. */
  readonly rate?: number;
  readonly p50?: number;
  readonly p99?: number;
  readonly rss?: number;
  /** Client CPU and GC pauses per message (per call), in µs: medians over the runs. */
  readonly cpu?: number;
  readonly gc?: number;
}

export interface Machine {
  readonly cpus: string;
  /** Load averages at the start and the end: the machine may be shared. */
  readonly load: string;
  readonly node: string;
  /** Each broker's product and version, comma-separated. */
  readonly broker: string;
  readonly date: string;
  /** `git rev-parse --short HEAD`, `+dirty` when tracked files (other than the bench's output) changed. */
  readonly commit: string;
  readonly command: string;
}

export interface Results {
  readonly contenders: readonly ContenderDef[];
  readonly workloads: readonly WorkloadSpec[];
  readonly cells: ReadonlyMap<string, Cell>;
  readonly settings: ReadonlyMap<string, readonly string[]>;
  readonly runs: number;
  readonly backlogRuns: number;
  readonly quick: boolean;
  /** Children run again after an outside disconnection. */
  readonly notes: readonly string[];
  readonly machine: Machine;
  readonly durationS: number;
  /** The gate's verdicts (plan.ts `GATES`), when its cells were measured. */
  readonly gates: readonly Verdict[];
  /** Quick mode: each gated workload as its gate runs measured it (more messages than the rest). */
  readonly gateSpecs: readonly WorkloadSpec[];
}

export const key = (contender: string, workload: string): string => `${contender}|${workload}`;

/**
 * One cell from the results of its runs (undefined results: the child died before reporting);
 * `notRun` is why its broker was not asked (it did not answer).
 */
export function aggregate(
  contender: ContenderDef,
  workload: WorkloadSpec,
  runs: readonly (WorkloadResult | undefined)[],
  notApplicable?: string,
  notRun?: string,
): Cell {
  if (notApplicable) return { contender, workload, status: 'n/a', reason: notApplicable, runs: [] };
  if (notRun) return { contender, workload, status: 'not run', reason: notRun, runs: [] };
  const done = runs.filter((r): r is WorkloadResult => r !== undefined);
  const failed = runs.find((r) => !r?.ok);
  if (failed !== undefined || done.length === 0) {
    const reason = failed?.error ?? 'the child exited without reporting';
    return { contender, workload, status: 'failed', reason, runs: done };
  }
  const values = (pick: (r: WorkloadResult) => number | undefined): number[] =>
    done.map(pick).filter((v): v is number => v !== undefined);
  const med = (v: number[]): number | undefined => (v.length ? median(v) : undefined);
  return {
    contender,
    workload,
    status: 'ok',
    runs: done,
    rate: med(values((r) => r.rate)),
    p50: med(values((r) => r.p50Ms)),
    p99: med(values((r) => r.p99Ms)),
    rss: Math.max(...values((r) => r.rssMb)),
    cpu: med(values((r) => r.cpuUs)),
    gc: med(values((r) => r.gcUs)),
  };
}

type Metric = 'rate' | 'p50' | 'p99' | 'rss' | 'cpu' | 'gc';

/**
 * The cell's metric divided by its reference's on the same workload (plan.ts `referenceOf`: the raw
 * client of its broker, RabbitMQ's volatile raw RPC for requests).
 */
export function ratio(results: Results, cell: Cell, metric: Metric): number | undefined {
  const ref = referenceOf(cell.contender, cell.workload);
  if (!ref || cell.status !== 'ok') return undefined;
  const base = results.cells.get(key(ref, cell.workload.name));
  const a = cell[metric];
  const b = base?.status === 'ok' ? base[metric] : undefined;
  return a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
}

const ms = (v: number | undefined): string => (v === undefined ? '' : v.toFixed(2));
const us = (v: number | undefined): string => (v === undefined ? '' : v.toFixed(1));
const times = (v: number | undefined): string => (v === undefined ? '' : `${v.toFixed(2)}x`);

/** One markdown table row per contender that runs `workload`. */
function workloadTable(results: Results, workload: WorkloadSpec): string[] {
  const rr = workload.kind === 'request-reply';
  const unit = rr ? 'calls/s' : workload.kind === 'backlog' ? 'drain msgs/s' : 'msgs/s';
  const per = rr ? 'call' : 'msg';
  const head = rr
    ? `| broker | contender | ${unit} | runs | vs raw | p50 ms | vs raw | p99 ms | vs raw | CPU µs/${per} | vs raw | GC µs/${per} | peak RSS MB | target |`
    : `| broker | contender | ${unit} | runs | vs raw | CPU µs/${per} | vs raw | GC µs/${per} | peak RSS MB | vs raw | target |`;
  const columns = head.split('|').length - 2;
  const lines = [head, head.replace(/[^|]+/g, ' --- ')];
  for (const contender of results.contenders) {
    const cell = results.cells.get(key(contender.id, workload.name));
    if (!cell) continue;
    const broker = brokerLabel(contender);
    if (cell.status !== 'ok') {
      const what =
        cell.status === 'n/a'
          ? `n/a (${cell.reason})`
          : `**${cell.status === 'failed' ? 'FAILED' : 'NOT RUN'}**: ${cell.reason}`;
      lines.push(`| ${broker} | ${contender.label} | ${what} |${' |'.repeat(columns - 3)}`);
      continue;
    }
    const r = (metric: Metric): string => times(ratio(results, cell, metric));
    const runs = cell.runs.map((run) => int(run.rate ?? 0)).join(' / ');
    const rate = `${int(cell.rate ?? 0)} | ${runs} | ${r('rate')}`;
    const cost = `${us(cell.cpu)} | ${r('cpu')} | ${us(cell.gc)}`;
    const rss = (cell.rss ?? 0).toFixed(0);
    const target = cellTarget(results, cell);
    lines.push(
      rr
        ? `| ${broker} | ${contender.label} | ${rate} | ${ms(cell.p50)} | ${r('p50')} | ${ms(cell.p99)} | ${r('p99')} | ${cost} | ${rss} | ${target} |`
        : `| ${broker} | ${contender.label} | ${rate} | ${cost} | ${rss} | ${r('rss')} | ${target} |`,
    );
  }
  return lines;
}

/** The broker column: RabbitMQ's queue type, Redis Streams, NATS JetStream, or none. */
function brokerLabel(contender: ContenderDef): string {
  if (!contender.broker) return 'none (in memory)';
  const label = BROKERS[contender.broker].label;
  return contender.queueType ? `${label} ${contender.queueType}` : label;
}

/**
 * One row per workload, one column per library contender with a reference (durable requests
 * aside: they have their own rows): its throughput over its reference's, with both rates.
 */
function brokerSummary(results: Results): string[] {
  const compared = results.contenders.filter(
    (c) => c.kind === 'ours' && c.reference && c.requests !== 'durable',
  );
  if (compared.length === 0) return [];
  const head = `| workload | ${compared.map(brokerLabel).join(' | ')} |`;
  const lines = [head, head.replace(/[^|]+/g, ' --- ')];
  for (const w of results.workloads) {
    const cells = compared.map((c) => {
      const cell = results.cells.get(key(c.id, w.name));
      const ref = referenceOf(c, w);
      const base = ref ? results.cells.get(key(ref, w.name)) : undefined;
      if (!cell || cell.status === 'n/a') return 'n/a';
      if (cell.status !== 'ok') return cell.status === 'failed' ? '**FAILED**' : 'not run';
      if (base?.status !== 'ok') return `${int(cell.rate ?? 0)} / ${base?.status ?? '?'}`;
      return `**${times(ratio(results, cell, 'rate'))}** (${int(cell.rate ?? 0)} / ${int(base.rate ?? 0)})`;
    });
    lines.push(`| ${w.name} | ${cells.join(' | ')} |`);
  }
  return lines;
}

const DESCRIPTIONS: Record<string, string> = {
  'fire-and-forget':
    'publish (confirmed) and consume (acked); the clock runs from the first publish to the last message handled',
  'request-reply': 'request() until its reply; latency per call',
  retry: '10% of the messages throw on their first delivery and succeed on the next one',
  backlog:
    'a backlog published first by another process, then drained by a handler that awaits 0-1 ms; rate from first to last delivery, RSS of the draining process only',
};

function describe(results: Results, w: WorkloadSpec): string {
  const size = w.bodyBytes >= 1024 ? `${w.bodyBytes / 1024} KiB` : `${w.bodyBytes} B`;
  const shape =
    w.kind === 'request-reply'
      ? w.inFlight === 1
        ? 'sequential calls'
        : `${w.inFlight} calls in flight`
      : `${w.consumers} consumer instance${w.consumers > 1 ? 's (connections/apps) competing on one queue' : ''}, ${w.inFlight} unconfirmed publishes at most`;
  const warm = w.warmup ? `, after ${int(w.warmup)} warm-up messages` : '';
  const runs =
    w.kind === 'backlog' && !results.quick
      ? ` Measured in ${Math.min(results.runs, results.backlogRuns)} run(s) (\`--backlog-runs\`).`
      : '';
  const gated = results.gateSpecs.find((g) => g.name === w.name);
  const gate = gated
    ? ` The gated cells (see "Gate"): ${results.runs} runs of ${int(gated.messages)} messages, the contender and its reference in turn, after one warm-up of ${int(gated.warmup ?? 0)}.`
    : '';
  const batch = w.batch
    ? ` The library only, consuming in batches: \`@Consume(topic, { concurrency: 2, batch: { size: ${w.batch.size}, maxWaitMs: ${w.batch.maxWaitMs} } })\`, its handler called with an array; to compare with ${w.name.replace(/-batch$/, '')}.`
    : '';
  const ordered = w.orderedKeys
    ? ` The library only, consuming ordered: \`@Consume(topic, { concurrency: 10, ordered: true })\`, each message published with one of ${w.orderedKeys} \`orderingKey\`s in turn; to compare with ${w.name.replace(/-ordered$/, '')}.`
    : '';
  return `${int(w.messages)} × ${size} JSON, ${shape}${warm}: ${DESCRIPTIONS[w.kind]}.${batch}${ordered}${runs}${gate}`;
}

/** The whole report, in markdown. */
export function renderMarkdown(results: Results, chart?: string): string {
  const m = results.machine;
  const out = [
    '# Benchmarks',
    '',
    `Measured ${m.date} at commit \`${m.commit}\` on ${m.cpus}, Node ${m.node}, ${m.broker} on 127.0.0.1, in ${Math.round(results.durationS)} s (${m.load}). The library is the compiled package (\`npm run build:lib\`, loaded through its \`exports\` map by plain Node, as an application loads it), with its defaults.`,
    `Each figure is the median of ${results.quick ? `1 run (the gated ones: of ${results.runs})` : `${results.runs} run(s)`}, every contender in its own child process, contenders in alternating order; "vs raw" divides by the reference on the same workload in the same run: raw amqplib on the same queue type, raw ioredis on Redis Streams, raw nats.js on NATS JetStream (lower is better for latency, CPU and RSS). CPU is the child's user + system time (\`process.cpuUsage()\`) over the measured window per message, GC the garbage-collection pauses (\`PerformanceObserver\` 'gc' entries) in it per message: on a shared machine they move less than the rates. Peak RSS is \`process.resourceUsage().maxRSS\` of the child, the highest of the runs.`,
    "Request/reply on RabbitMQ: the reference is `raw-rpc`, a volatile raw RPC (non-durable classic server queue, non-persistent and unconfirmed requests, direct reply-to, noDelay), one row since a queue type does not apply to it. `ours-quorum` and `ours-classic` are the library in apps whose event queues are quorum or classic, sending requests with its default (volatile); the durable rows, per queue type, are the raw RPC through a durable queue with persistent, confirmed requests (compared with `raw-rpc`: what durability costs) and the library's `request(payload, { durable: true })` (compared with that durable raw RPC).",
    'A figure is reported only when every publish was confirmed and every message id was handled (or every request answered with its own id); otherwise the cell says FAILED. A contender whose broker did not answer says NOT RUN.',
    'The brokers and the contenders share the same cores, so the broker is part of every figure; the "runs" column shows the spread between runs: on a small shared machine, ratios within about ±20% of each other are not a real difference.',
    ...(results.quick
      ? [
          '',
          '**Quick mode (smoke test)**: small counts, one child per contender runs its ungated workloads in turn (so its peak RSS accumulates), once; the gated workloads run several times with larger counts, each contender and its reference in turn: the figures show that everything completes and is counted, and the gate judges the ratios.',
        ]
      : []),
    '',
    'Reproduce: `' +
      m.command +
      '` (RabbitMQ on 127.0.0.1:5672 or `BROKER_URL`, Redis on 127.0.0.1:6379 or `REDIS_URL`, NATS with JetStream on 127.0.0.1:4222 or `NATS_URL`); smoke test and gate: `npm run bench -- --quick`; one broker: `--only redis` (or `nats`, `rabbitmq`); a CPU profile of one workload: `npm run bench:profile -- --only ours-classic --workload ff-256B-x1`.',
    '',
  ];
  if (chart) {
    out.push(`![Throughput relative to the raw client of the same broker](${chart})`, '');
  }
  const summary = brokerSummary(results);
  if (summary.length > 0) {
    out.push(
      '## Each broker against its raw client',
      '',
      'Throughput (msgs/s, calls/s for request/reply, drain msgs/s for the backlog) of nest-messaging over its reference in the same run, then both rates: ours / raw.',
      '',
      ...summary,
      '',
    );
  }
  const goals = targets(results);
  if (goals.length > 0) {
    out.push('## Targets', '', '| target | measured | met |', '| --- | --- | --- |');
    for (const t of goals) out.push(`| ${t.what} | ${t.measured} | ${mark(t.met)} |`);
    out.push('');
  }
  out.push(
    "The targets are the issue's (issue 19), for the library's contenders; the durable requests have none (they are compared with the durable raw RPC).",
    'Where the time goes, what was done about it, and for each target not met why it is not or what is left to try: [performance.md](performance.md).',
  );
  if (results.gates.length > 0) {
    out.push(
      '',
      '## Gate',
      '',
      "The regression gate (bench/plan.ts `GATES`): the median of the ratios of the runs taken side by side, against a floor (or a ceiling for latency) well below the target; a throughput under its floor fails when the CPU per message confirms it (over 1/floor times raw's) or under half the floor. `npm run bench -- --quick` (CI) fails on any line that is not ok; a full run only shows them.",
      '',
      ...results.gates.map((v) => `- ${v.line}`),
    );
  }
  for (const w of results.workloads) {
    out.push('', `## ${w.name}`, '', describe(results, w), '', ...workloadTable(results, w));
  }
  if (results.notes.length > 0) {
    out.push('', '## Notes', '', ...results.notes.map((n) => `- ${n}`));
  }
  out.push('', '## Settings of each contender', '');
  for (const c of results.contenders) {
    const lines = results.settings.get(c.id);
    out.push(`- **${c.label}** (\`${c.id}\`): ${lines ? lines.join('; ') : '(did not start)'}`);
  }
  return `${out.join('\n')}\n`;
}

/**
 * The README's headline table (between its `<!-- bench:begin -->` and `<!-- bench:end -->`
 * markers): the issue's headline ratios, with their targets, and a link to the full report.
 */
export function readmeBlock(results: Results): string {
  const goals = targets(results);
  const find = (prefix: string): (typeof goals)[number] | undefined =>
    goals.find((t) => t.what.startsWith(prefix));
  const row = (what: string, prefixes: string[], target: string): string => {
    const found = prefixes.map(find);
    const measured = found
      .map((t, i) =>
        found.length > 1
          ? `${t?.measured ?? '?'} (${prefixes[i].split(':')[0]})`
          : (t?.measured ?? '?'),
      )
      .join(', ');
    const met = found.every((t) => t?.met === true)
      ? true
      : found.some((t) => t?.met === false)
        ? false
        : undefined;
    return `| ${what} | ${measured} | ${target} | ${mark(met)} |`;
  };
  const m = results.machine;
  return [
    `Headline figures of the latest full \`npm run bench\` (${m.date}, commit \`${m.commit}\`, ${m.cpus}): the library over the raw client of the same broker, measured in the same run. Every workload, CPU and GC per message, peak RSS, Nest's RMQ transport and golevelup, and each contender's settings: [docs/benchmarks.md](docs/benchmarks.md).`,
    '',
    '| workload | ours / raw | target | met |',
    '| --- | --- | --- | --- |',
    row('RabbitMQ fire-and-forget 256 B, classic queue', ['classic: ff-256B-x1'], '>= 0.9x'),
    row('RabbitMQ fire-and-forget 256 B, quorum queue', ['quorum: ff-256B-x1'], '>= 0.9x'),
    row(
      'RabbitMQ request/reply p50, sequential (vs a volatile raw RPC)',
      ['quorum: rr-seq p50', 'classic: rr-seq p50'],
      '<= 1.5x',
    ),
    row(
      'RabbitMQ request/reply calls/s, 100 in flight',
      ['quorum: rr-100', 'classic: rr-100'],
      '>= 0.8x',
    ),
    row(
      'InMemoryBackend through the Nest pipeline',
      ['InMemoryBackend ff-256B-x1'],
      '>= 250,000 msgs/s',
    ),
    row('Redis Streams fire-and-forget 256 B', ['redis: ff-256B-x1'], '>= 0.9x'),
    row('NATS JetStream fire-and-forget 256 B', ['nats: ff-256B-x1'], '>= 0.9x'),
    row(
      'NATS request/reply calls/s, 100 in flight (vs a core NATS request)',
      ['nats: rr-100'],
      '>= 0.8x',
    ),
  ].join('\n');
}
