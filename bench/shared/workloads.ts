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

/** Runs one workload; never throws (a failure is a result with `ok: false`). */
export async function runWorkload(
  contender: Contender,
  task: ChildTask,
  spec: WorkloadSpec,
): Promise<WorkloadResult> {
  const name = `${task.prefix}-${spec.name}`;
  const tally = new Tally(spec.messages);
  try {
    switch (spec.kind) {
      case 'fire-and-forget':
      case 'retry':
        return await pubSub(contender, task, spec, name, tally);
      case 'request-reply':
        return await requestReply(contender, task, spec, name, tally);
      case 'backlog':
        return await backlog(contender, task, spec, name, tally);
    }
  } catch (error) {
    return failure(spec, tally, error);
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
 * message throws on its first delivery.
 */
async function pubSub(
  contender: Contender,
  task: ChildTask,
  spec: WorkloadSpec,
  name: string,
  tally: Tally,
): Promise<WorkloadResult> {
  const retry = spec.kind === 'retry';
  if (retry && !contender.supportsRetry) throw new Error('no retry feature');
  const failEvery = spec.failEvery ?? 10;
  const failedOnce = new Uint8Array(spec.messages);
  const warmup = spec.warmup ?? 0;
  const warm = new Tally(warmup);
  const rig = await contender.pubSub({
    name,
    consumers: spec.consumers,
    inFlight: spec.inFlight,
    retry,
    handler: (message) => {
      const id = message.id;
      if (id >= spec.messages) return warm.record(id - spec.messages);
      if (retry && id % failEvery === 0 && failedOnce[id] === 0) {
        failedOnce[id] = 1;
        tally.counts.injectedFailures++;
        throw new Error(`bench: message ${id} fails on its first delivery`);
      }
      tally.record(id);
    },
  });
  try {
    const make = messageFactory(spec.bodyBytes);
    // Warm-up (not measured): ids after the measured ones, never failed on purpose.
    await Promise.all([
      pool(warmup, spec.inFlight, (i) => rig.publish(make(spec.messages + i))),
      warm.complete(task.stallMs),
    ]);
    if (warm.verdict() !== undefined) throw new Error(`warm-up: ${warm.verdict()}`);
    const window = await MeasuredWindow.open(task.profile);
    const started = nowMs();
    await Promise.all([
      publishAll((i) => rig.publish(make(i)), spec, tally),
      tally.complete(task.stallMs),
    ]);
    const elapsed = nowMs() - started;
    const cost = await window.close(spec.messages);
    const expectedFailures = retry ? Math.ceil(spec.messages / failEvery) : 0;
    if (tally.counts.injectedFailures !== expectedFailures) {
      throw new Error(
        `${tally.counts.injectedFailures} injected failures, expected ${expectedFailures}`,
      );
    }
    return result(spec, tally, elapsed, cost);
  } finally {
    await rig.close();
  }
}

/**
 * Request/reply: `warmup` calls first (not measured), then `messages` calls with `inFlight` pending
 * at most (1 = sequential). Latency is per call, from `request()` to its reply.
 */
async function requestReply(
  contender: Contender,
  task: ChildTask,
  spec: WorkloadSpec,
  name: string,
  tally: Tally,
): Promise<WorkloadResult> {
  const rig = await contender.requestReply({ name, handler: (m) => ({ id: m.id }) });
  try {
    const make = messageFactory(spec.bodyBytes);
    const warmup = spec.warmup ?? 0;
    await pool(warmup, spec.inFlight, async (i) => {
      const reply = await rig.request(make(spec.messages + i), REQUEST_TIMEOUT_MS);
      if (reply?.id !== spec.messages + i) throw new Error('warm-up reply did not match');
    });
    const latencies = new Array<number>(spec.messages);
    const window = await MeasuredWindow.open(task.profile);
    const started = nowMs();
    await pool(spec.messages, spec.inFlight, async (i) => {
      tally.counts.published++;
      const t0 = nowMs();
      const reply = await rig.request(make(i), REQUEST_TIMEOUT_MS);
      latencies[i] = nowMs() - t0;
      tally.counts.confirmed++;
      if (reply?.id === i) tally.record(i);
      else tally.counts.unknown++;
    });
    const elapsed = nowMs() - started;
    return result(spec, tally, elapsed, await window.close(spec.messages), latencies);
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
