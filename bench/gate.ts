/**
 * The regression gate ({@link GATES} in plan.ts): which runs quick mode makes for it, and the
 * verdict on each gate from the results of the run.
 *
 * A gate compares two cells of the same run: the library's contender and its reference on one
 * workload. Its ratio is the median of the ratios of the runs taken side by side (run i of the
 * contender over run i of the reference): in quick mode the two take turns run by run (reference
 * first, then the contender first, ...), so that a neighbour's burst on the shared cores hits both
 * members of a pair, or a few pairs out of seven. The verdict is in `judge`.
 */
import * as plan from './plan';
import { key, type Results } from './report';
import { median } from './shared/measure';
import type { WorkloadResult, WorkloadSpec } from './shared/protocol';

/** A gate whose two cells are both selected, with its reference's id. */
export interface ActiveGate extends plan.Gate {
  readonly reference: string;
}

/** The gates of `plan.GATES` whose contender, reference and workload are all in this run. */
export function activeGates(
  defs: readonly plan.ContenderDef[],
  specs: readonly WorkloadSpec[],
): ActiveGate[] {
  const out: ActiveGate[] = [];
  for (const gate of plan.GATES) {
    const def = defs.find((c) => c.id === gate.contender);
    const spec = specs.find((w) => w.name === gate.workload);
    const reference = def && spec ? plan.referenceOf(def, spec) : undefined;
    if (reference && defs.some((c) => c.id === reference)) out.push({ ...gate, reference });
  }
  return out;
}

/**
 * Quick mode's gate runs: one group per reference (the reference, then each contender gated
 * against it), each member a child running its gated workloads of that group. A run goes through
 * the groups in order, their members forwards in even runs and backwards in odd ones.
 */
export function gateGroups(
  gates: readonly ActiveGate[],
  defs: readonly plan.ContenderDef[],
  specs: readonly WorkloadSpec[],
): { def: plan.ContenderDef; specs: WorkloadSpec[] }[][] {
  const groups = new Map<string, Map<string, Set<string>>>();
  for (const g of gates) {
    const members = groups.get(g.reference) ?? new Map<string, Set<string>>();
    groups.set(g.reference, members);
    for (const id of [g.reference, g.contender]) {
      members.set(id, (members.get(id) ?? new Set()).add(g.workload));
    }
  }
  return [...groups.values()].map((members) =>
    [...members].map(([id, names]) => ({
      def: defs.find((c) => c.id === id)!,
      specs: specs.filter((w) => names.has(w.name)),
    })),
  );
}

export interface Verdict {
  readonly gate: ActiveGate;
  /** The median of the paired ratios; undefined when a cell has no figure. */
  readonly ratio?: number;
  readonly perRun: readonly number[];
  /** Undefined: not judged (a cell failed or was not run; that failure is reported on its own). */
  readonly met?: boolean;
  readonly line: string;
}

const figure = (r: WorkloadResult, metric: plan.Gate['metric']): number | undefined =>
  metric === 'rate' ? r.rate : r.p50Ms;

/**
 * The verdict on each active gate, from the cells of `results`. A latency gate (`p50`) is judged on
 * its ratio alone: a median of hundreds of calls moves little. A throughput gate fails when its
 * ratio is under the floor and the CPU per message confirms it: over 1/floor times raw's (the
 * library does more per message, as it would on a quiet machine), or the ratio is under half the
 * floor (a collapse, whatever the CPU). Under the floor with the CPU per message within 1/floor,
 * the clock was the shared machine's: on 2 cores at a load of 5-9, raw amqplib against itself read
 * 0.66-1.39x by the clock but 0.82-1.28x in CPU per message (see plan.ts GATES).
 */
export function judge(results: Results, gates: readonly ActiveGate[]): Verdict[] {
  return gates.map((gate) => {
    const ours = results.cells.get(key(gate.contender, gate.workload));
    const ref = results.cells.get(key(gate.reference, gate.workload));
    const what = `${gate.workload} ${gate.contender} vs ${gate.reference}`;
    const bound = `${gate.metric === 'rate' ? 'floor' : 'ceiling'} ${gate.bound}x`;
    if (ours?.status !== 'ok' || ref?.status !== 'ok') {
      const why = ours?.status !== 'ok' ? gate.contender : gate.reference;
      const line = `gate not judged: ${what}: ${why} has no figure (${bound})`;
      return { gate, perRun: [], line };
    }
    const paired = (pick: (r: WorkloadResult) => number | undefined): number[] => {
      const out: number[] = [];
      for (let i = 0; i < Math.min(ours.runs.length, ref.runs.length); i++) {
        const a = pick(ours.runs[i]);
        const b = pick(ref.runs[i]);
        if (a !== undefined && b !== undefined && b > 0) out.push(a / b);
      }
      return out;
    };
    const perRun = paired((r) => figure(r, gate.metric));
    const ratio = perRun.length > 0 ? median(perRun) : undefined;
    const cpuRuns = paired((r) => r.cpuUs);
    const cpu = cpuRuns.length > 0 ? median(cpuRuns) : undefined;
    const metric =
      gate.metric === 'rate' ? (gate.workload.startsWith('rr') ? 'calls/s' : 'msgs/s') : 'p50';
    const runs = perRun.map((r) => r.toFixed(2)).join(', ');
    const head = `${what}: ${metric} ${ratio === undefined ? '?' : ratio.toFixed(2)}x (runs ${runs})`;
    const cpuText = cpu === undefined ? '' : `CPU per message ${cpu.toFixed(2)}x`;
    if (ratio === undefined) return { gate, perRun, line: `GATE NOT JUDGED: ${head}` };
    if (gate.metric === 'p50') {
      const met = ratio <= gate.bound;
      const line = `${met ? 'gate ok' : 'GATE FAILED'}: ${head}, ${bound}; ${cpuText}`;
      return { gate, ratio, perRun, met, line };
    }
    if (ratio >= gate.bound) {
      return { gate, ratio, perRun, met: true, line: `gate ok: ${head}, ${bound}; ${cpuText}` };
    }
    // Below the floor by the clock. Same cost per message as the floor allows, and not a collapse:
    // the neighbours of a shared machine, not the library (see plan.ts GATES).
    const cpuCeiling = 1 / gate.bound;
    const hard = gate.bound / 2;
    const excused = cpu !== undefined && cpu <= cpuCeiling && ratio >= hard;
    const why = [
      ...(cpu !== undefined && cpu > cpuCeiling ? [`${cpuText} > ${cpuCeiling.toFixed(2)}x`] : []),
      ...(ratio < hard ? [`under the hard floor ${hard}x`] : []),
    ];
    const line = excused
      ? `gate ok: ${head} < ${bound}, but ${cpuText} <= ${cpuCeiling.toFixed(2)}x: the machine, not the library (hard floor ${hard}x)`
      : `GATE FAILED: ${head} < ${bound}, ${why.join(', ') || 'no CPU figure'}`;
    return { gate, ratio, perRun, met: excused, line };
  });
}
