/**
 * The targets (issue 19), each with what the run measured and whether it is met: the
 * Targets table of the report, the target column of each workload's table and the headline table
 * of the README. Ratios are to the reference of the same run (plan.ts `referenceOf`): raw amqplib on
 * the same queue type for events, its volatile RPC (`raw-rpc`) for requests, raw ioredis, raw
 * nats.js.
 */
import { key, ratio, type Cell, type Results } from './report';

export const RSS_BUDGET_MB = 120;
/** InMemoryBackend through the Nest pipeline, ff-256B-x1. */
export const MEMORY_RATE = 250_000;
/** Fire-and-forget msgs/s over raw's, on every broker. */
export const FF_RATIO = 0.9;
/** Sequential requests: p50 over the volatile raw RPC's, at most. */
export const RR_SEQ_P50 = 1.5;
export const RR_SEQ_P99 = 2;
/** 100 requests in flight: calls/s over raw's (RabbitMQ's volatile RPC, core NATS). */
export const RR_100_RATIO = 0.8;
/** Retry-heavy traffic over plain (ff-256B-x1) of the same contender. */
export const RETRY_RATIO = 0.85;

export interface Target {
  readonly what: string;
  readonly measured: string;
  readonly met?: boolean;
}

export const x3 = (v: number): string => `${v.toFixed(3)}x`; // 3 decimals: 0.896x is not 0.9x
const mb = (v: number): string => `${v.toFixed(0)} MB`;
export const int = (v: number): string => Math.round(v).toLocaleString('en-US');
export const mark = (met: boolean | undefined): string =>
  met === undefined ? '' : met ? '✅' : '❌';

/** The targets, for the library's contenders, each with what was measured. */
export function targets(results: Results): Target[] {
  const out: Target[] = [];
  const has = (id: string): boolean => results.contenders.some((c) => c.id === id);
  const cell = (c: string, w: string): Cell | undefined => results.cells.get(key(c, w));
  const check = (
    what: string,
    value: number | undefined,
    ok: (v: number) => boolean,
    fmt: (v: number) => string = x3,
  ): void => {
    out.push({
      what,
      measured: value === undefined ? 'not measured' : fmt(value),
      met: value === undefined ? undefined : ok(value),
    });
  };
  const rateRatio = (id: string, w: string): number | undefined => {
    const c = cell(id, w);
    return c && ratio(results, c, 'rate');
  };
  // The batch workload has no target of the issue: it is compared with ff-256B-x1 in performance.md.
  const ffWorkloads = results.workloads.filter(
    (s) => s.kind === 'fire-and-forget' && !s.batch && !s.orderedKeys,
  );
  for (const q of ['quorum', 'classic']) {
    const ours = `ours-${q}`;
    if (!has(ours)) continue;
    for (const w of ffWorkloads) {
      check(
        `${q}: ${w.name} msgs/s >= ${FF_RATIO}x raw`,
        rateRatio(ours, w.name),
        (v) => v >= FF_RATIO,
      );
    }
    const seq = cell(ours, 'rr-seq');
    check(
      `${q}: rr-seq p50 <= ${RR_SEQ_P50}x raw volatile RPC`,
      seq && ratio(results, seq, 'p50'),
      (v) => v <= RR_SEQ_P50,
    );
    check(
      `${q}: rr-seq p99 <= ${RR_SEQ_P99}x raw volatile RPC`,
      seq && ratio(results, seq, 'p99'),
      (v) => v <= RR_SEQ_P99,
    );
    check(
      `${q}: rr-100 calls/s >= ${RR_100_RATIO}x raw volatile RPC`,
      rateRatio(ours, 'rr-100'),
      (v) => v >= RR_100_RATIO,
    );
    const retryCost = (id: string): number | undefined => {
      const retry = cell(id, 'retry')?.rate;
      const plain = cell(id, 'ff-256B-x1')?.rate;
      return retry && plain ? retry / plain : undefined;
    };
    const rawCost = retryCost(`raw-${q}`);
    check(
      `${q}: retry-heavy / plain (ff-256B-x1) >= ${RETRY_RATIO}` +
        (rawCost === undefined ? '' : ` (raw amqplib's own: ${x3(rawCost)})`),
      retryCost(ours),
      (v) => v >= RETRY_RATIO,
    );
    check(
      `${q}: backlog drain peak RSS <= ${RSS_BUDGET_MB} MB (bounded)`,
      cell(ours, 'backlog')?.rss,
      (v) => v <= RSS_BUDGET_MB,
      mb,
    );
  }
  for (const broker of ['redis', 'nats']) {
    const ours = `ours-${broker}`;
    if (!has(ours)) continue;
    for (const w of ffWorkloads) {
      check(
        `${broker}: ${w.name} msgs/s >= ${FF_RATIO}x raw`,
        rateRatio(ours, w.name),
        (v) => v >= FF_RATIO,
      );
    }
    if (broker === 'nats') {
      check(
        `nats: rr-100 calls/s >= ${RR_100_RATIO}x raw (core NATS request)`,
        rateRatio(ours, 'rr-100'),
        (v) => v >= RR_100_RATIO,
      );
    }
  }
  // As the issue measured it: ~256 B messages (10 KiB ones keep 1000 x 10 KiB in flight; raw
  // amqplib too peaks above the budget there, and the tables show it).
  for (const id of ['ours-quorum', 'ours-classic', 'ours-memory']) {
    if (!has(id)) continue;
    const rss = ffWorkloads
      .filter((w) => w.bodyBytes <= 256)
      .map((w) => cell(id, w.name)?.rss)
      .filter((v): v is number => v !== undefined);
    check(
      `${id}: fire-and-forget (256 B) peak RSS <= ${RSS_BUDGET_MB} MB`,
      rss.length ? Math.max(...rss) : undefined,
      (v) => v <= RSS_BUDGET_MB,
      mb,
    );
  }
  if (has('ours-memory')) {
    check(
      `InMemoryBackend ff-256B-x1 >= ${int(MEMORY_RATE)} msgs/s`,
      cell('ours-memory', 'ff-256B-x1')?.rate,
      (v) => v >= MEMORY_RATE,
      (v) => `${int(v)} msgs/s`,
    );
  }
  return out;
}

/**
 * The target of one cell's main figure, as shown next to it: the library's contenders on RabbitMQ,
 * Redis and NATS (durable requests have none: they are compared with the durable raw RPC) and
 * InMemoryBackend.
 */
export function cellTarget(results: Results, cell: Cell): string {
  const c = cell.contender;
  if (cell.status !== 'ok' || c.requests === 'durable') return '';
  if (c.kind !== 'ours' && c.kind !== 'memory') return '';
  const w = cell.workload;
  if (w.batch || w.orderedKeys) return '';
  const rss = `RSS <= ${RSS_BUDGET_MB} MB ${mark((cell.rss ?? 0) <= RSS_BUDGET_MB)}`;
  if (c.kind === 'memory') {
    if (w.kind !== 'fire-and-forget') return '';
    const rate = `>= ${MEMORY_RATE / 1000}k/s ${mark((cell.rate ?? 0) >= MEMORY_RATE)}`;
    return w.name === 'ff-256B-x1' ? `${rate}, ${rss}` : rss;
  }
  const fmt = (v: number | undefined): string => (v === undefined ? '?' : x3(v));
  const atLeast = (v: number | undefined, t: number): string =>
    `${fmt(v)} >= ${t}x ${mark(v === undefined ? undefined : v >= t)}`;
  const atMost = (v: number | undefined, t: number): string =>
    `${fmt(v)} <= ${t}x ${mark(v === undefined ? undefined : v <= t)}`;
  const amqp = c.broker === 'rabbitmq';
  switch (w.kind) {
    case 'fire-and-forget': {
      const r = atLeast(ratio(results, cell, 'rate'), FF_RATIO);
      return amqp && w.bodyBytes <= 256 ? `${r}, ${rss}` : r;
    }
    case 'request-reply':
      if (!amqp) {
        return c.broker === 'nats' && w.inFlight > 1
          ? atLeast(ratio(results, cell, 'rate'), RR_100_RATIO)
          : '';
      }
      if (w.inFlight === 1) {
        const p50 = atMost(ratio(results, cell, 'p50'), RR_SEQ_P50);
        return `p50 ${p50}, p99 ${atMost(ratio(results, cell, 'p99'), RR_SEQ_P99)}`;
      }
      return atLeast(ratio(results, cell, 'rate'), RR_100_RATIO);
    case 'retry': {
      if (!amqp) return '';
      const plain = results.cells.get(key(c.id, 'ff-256B-x1'))?.rate;
      const v = plain && cell.rate ? cell.rate / plain : undefined;
      return `retry/plain ${atLeast(v, RETRY_RATIO)}`;
    }
    case 'backlog':
      return `bounded: ${rss}`;
  }
}
