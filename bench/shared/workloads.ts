/**
 * The workloads, written once against the {@link Contender} interface so that every contender does
 * exactly the same thing. A figure is returned only when every message was counted: each publish
 * confirmed and each id 0..n-1 handled (or each request answered with its own id). Each measured
 * window also reports the child's CPU time and GC pauses per message ({@link MeasuredWindow}).
 */
import { briefPause, messageFactory, nowMs, peakRssMb, percentile, pool, Tally } from './measure';
import type { ChildTask, Contender, WorkloadResult, WorkloadSpec } from './protocol';
import { MeasuredWindow, type WindowCost } from './window';

const REQUEST_TIMEOUT_MS = 10_000;

/**
 * How a child runs a workload: `slices` measured runs on one rig (set up and warmed up once), with
 * `turn()` awaited before each run after the first and once after the last (the orchestrator's go:
 * the rig is closed only then, so that closing it does not overlap the run of a partner child);
 * each run's result goes to `report`. A single run is `{ slices: 1 }` with a `turn()` that
 * resolves at once.
 */
export interface Runs {
  readonly slices: number;
  /** Resolves when the next step may start; false when the orchestrator is done with the child. */
  turn(): Promise<boolean>;
  report(result: WorkloadResult): void;
}

/** Runs one workload once; never throws (a failure is a result with `ok: false`). */
export async function runWorkload(
  contender: Contender,
  task: ChildTask,
  spec: WorkloadSpec,
): Promise<WorkloadResult> {
  let reported: WorkloadResult | undefined;
  await runSlices(contender, task, spec, {
    slices: 1,
    turn: () => Promise.resolve(true),
    report: (r) => (reported = r),
  });
  return reported!;
}

/**
 * Runs one workload as `runs` says (fire-and-forget and request/reply can be sliced; the others run
 * once) and resolves with the last `turn()`: whether the child goes on. Never throws: a failure is
 * reported as a result with `ok: false`, and ends the slices.
 */
export async function runSlices(
  contender: Contender,
  task: ChildTask,
  spec: WorkloadSpec,
  runs: Runs,
): Promise<boolean> {
  const name = `${task.prefix}-${spec.name}`;
  const current = { tally: new Tally(spec.messages) };
  try {
    switch (spec.kind) {
      case 'fire-and-forget':
      case 'retry':
        return await pubSub(contender, task, spec, name, runs, current);
      case 'request-reply':
        return await requestReply(contender, task, spec, name, runs, current);
      case 'backlog':
        runs.report(await backlog(contender, task, spec, name, current.tally));
        return await runs.turn();
    }
  } catch (error) {
    runs.report(failure(spec, current.tally, error));
    return false;
  }
}

function failure(spec: WorkloadSpec, tally: Tally, error: unknown): WorkloadResult {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`${spec.name} failed:`, error); // the stack goes to the orchestrator's log
  return {
    workload: spec.name,
    ok: false,
    error: message,
    rssMb: peakRssMb(),
    counts: tally.counts,
  };
}

function result(
  spec: WorkloadSpec,
  tally: Tally,
  elapsedMs: number,
  cost: WindowCost,
  latencies?: number[],
): WorkloadResult {
  const error = tally.verdict();
  const ok = error === undefined;
  return {
    workload: spec.name,
    ok,
    error,
    rate: ok ? (spec.messages / elapsedMs) * 1000 : undefined,
    p50Ms: latencies && ok ? percentile(latencies, 50) : undefined,
    p99Ms: latencies && ok ? percentile(latencies, 99) : undefined,
    rssMb: peakRssMb(),
    cpuUs: ok ? cost.cpuUs : undefined,
    gcUs: ok ? cost.gcUs : undefined,
    elapsedMs,
    counts: tally.counts,
  };
}

/** Publishes `messages` with `inFlight` unconfirmed at most; counts each confirm. */
async function publishAll(
  publish: (i: number) => Promise<void>,
  spec: WorkloadSpec,
  tally: Tally,
): Promise<void> {
  await pool(spec.messages, spec.inFlight, async (i) => {
    tally.counts.published++;
    await publish(i);
    tally.counts.confirmed++;
  });
}

/**
 * Fire-and-forget, plain or retry-heavy: after `warmup` messages (not measured), the clock runs from
 * the first publish until the last id was handled. In the retry workload every `failEvery`-th
 * message throws on its first delivery. Slice `s` publishes ids `s * messages` onwards; the
 * warm-up's come after every slice's.
 */
async function pubSub(
  contender: Contender,
  task: ChildTask,
  spec: WorkloadSpec,
  name: string,
  runs: Runs,
  current: { tally: Tally },
): Promise<boolean> {
  const retry = spec.kind === 'retry';
  if (retry && !contender.supportsRetry) throw new Error('no retry feature');
  const n = spec.messages;
  const total = n * runs.slices;
  const failEvery = spec.failEvery ?? 10;
  const failedOnce = new Uint8Array(total);
  const warmup = spec.warmup ?? 0;
  const warm = new Tally(warmup);
  let base = 0;
  const rig = await contender.pubSub({
    name,
    consumers: spec.consumers,
    inFlight: spec.inFlight,
    retry,
    ...(spec.batch && { batch: spec.batch }),
    ...(spec.orderedKeys && { orderedKeys: spec.orderedKeys }),
    handler: (message) => {
      const id = message.id;
      if (id >= total) return warm.record(id - total);
      const tally = current.tally;
      // A late redelivery of an earlier slice's message (at-least-once): a duplicate.
      if (id < base) {
        tally.counts.duplicates++;
        return;
      }
      if (retry && id % failEvery === 0 && failedOnce[id] === 0) {
        failedOnce[id] = 1;
        tally.counts.injectedFailures++;
        throw new Error(`bench: message ${id} fails on its first delivery`);
      }
      tally.record(id - base);
    },
  });
  try {
    const make = messageFactory(spec.bodyBytes);
    // Warm-up (not measured): ids after the measured ones, never failed on purpose.
    await Promise.all([
      pool(warmup, spec.inFlight, (i) => rig.publish(make(total + i))),
      warm.complete(task.stallMs),
    ]);
    if (warm.verdict() !== undefined) throw new Error(`warm-up: ${warm.verdict()}`);
    for (let slice = 0; slice < runs.slices; slice++) {
      if (slice > 0 && !(await runs.turn())) return false;
      base = slice * n;
      const tally = (current.tally = new Tally(n));
      const window = await MeasuredWindow.open(task.profile);
      const started = nowMs();
      await Promise.all([
        publishAll((i) => rig.publish(make(base + i)), spec, tally),
        tally.complete(task.stallMs),
      ]);
      const elapsed = nowMs() - started;
      const cost = await window.close(n);
      const expectedFailures = retry ? Math.ceil(n / failEvery) : 0;
      if (tally.counts.injectedFailures !== expectedFailures) {
        throw new Error(
          `${tally.counts.injectedFailures} injected failures, expected ${expectedFailures}`,
        );
      }
      const outcome = result(spec, tally, elapsed, cost);
      runs.report(outcome);
      if (!outcome.ok) return false;
    }
    return await runs.turn();
  } finally {
    await rig.close();
  }
}

/**
 * Request/reply: `warmup` calls first (not measured), then `messages` calls with `inFlight` pending
 * at most (1 = sequential). Latency is per call, from `request()` to its reply. Slice `s` sends ids
 * `s * messages` onwards; the warm-up's come after every slice's.
 */
async function requestReply(
  contender: Contender,
  task: ChildTask,
  spec: WorkloadSpec,
  name: string,
  runs: Runs,
  current: { tally: Tally },
): Promise<boolean> {
  const n = spec.messages;
  const total = n * runs.slices;
  const rig = await contender.requestReply({ name, handler: (m) => ({ id: m.id }) });
  try {
    const make = messageFactory(spec.bodyBytes);
    const warmup = spec.warmup ?? 0;
    await pool(warmup, spec.inFlight, async (i) => {
      const reply = await rig.request(make(total + i), REQUEST_TIMEOUT_MS);
      if (reply?.id !== total + i) throw new Error('warm-up reply did not match');
    });
    for (let slice = 0; slice < runs.slices; slice++) {
      if (slice > 0 && !(await runs.turn())) return false;
      const base = slice * n;
      const tally = (current.tally = new Tally(n));
      const latencies = new Array<number>(n);
      const window = await MeasuredWindow.open(task.profile);
      const started = nowMs();
      await pool(n, spec.inFlight, async (i) => {
        tally.counts.published++;
        const t0 = nowMs();
        const reply = await rig.request(make(base + i), REQUEST_TIMEOUT_MS);
        latencies[i] = nowMs() - t0;
        tally.counts.confirmed++;
        if (reply?.id === base + i) tally.record(i);
        else tally.counts.unknown++;
      });
      const elapsed = nowMs() - started;
      const outcome = result(spec, tally, elapsed, await window.close(n), latencies);
      runs.report(outcome);
      if (!outcome.ok) return false;
    }
    return await runs.turn();
  } finally {
    await rig.close();
  }
}

/**
 * Backlog, in two children with the same names: `fill` publishes `messages` to a queue nobody
 * consumes yet and keeps it; `drain` then consumes it with a handler that awaits 0-1 ms. The rate
 * (from the first delivery to the last) and peak RSS reported are the drain's: its process never
 * published anything. Without a phase (quick mode) one child does both.
 */
async function backlog(
  contender: Contender,
  task: ChildTask,
  spec: WorkloadSpec,
  name: string,
  tally: Tally,
): Promise<WorkloadResult> {
  const make = messageFactory(spec.bodyBytes);
  if (spec.phase !== 'drain') {
    const filler = await contender.pubSub({
      name,
      consumers: 0,
      inFlight: spec.inFlight,
      retry: false,
      keepQueue: true,
      handler: () => undefined,
    });
    const profiled = spec.phase === 'fill' ? task.profile : undefined;
    const window = await MeasuredWindow.open(profiled);
    const started = nowMs();
    try {
      await publishAll((i) => filler.publish(make(i)), spec, tally);
    } finally {
      await filler.close();
    }
    const elapsed = nowMs() - started;
    const cost = await window.close(spec.messages);
    if (spec.phase === 'fill') {
      // Nothing consumed here: report the fill itself, every publish confirmed.
      for (let i = 0; i < spec.messages; i++) tally.record(i);
      return result(spec, tally, elapsed, cost);
    }
  }
  // The drain counts publishes made by the fill child (or just above, in a single-child run).
  tally.counts.published = tally.counts.confirmed = spec.messages;
  const slowMs = spec.slowHandlerMs ?? 1;
  // The drain's window opens before its consumers start (the rate is still from the first delivery).
  const window = await MeasuredWindow.open(task.profile);
  const drainer = await contender.pubSub({
    name,
    consumers: spec.consumers,
    inFlight: spec.inFlight,
    retry: false,
    handler: async (message) => {
      await briefPause(slowMs);
      tally.record(message.id);
    },
  });
  try {
    await tally.complete(task.stallMs);
    // From the first delivery: the consumer's start-up is not part of the drain.
    const elapsed = nowMs() - (tally.firstAt ?? nowMs());
    return result(spec, tally, elapsed, await window.close(spec.messages));
  } finally {
    await drainer.close();
  }
}
