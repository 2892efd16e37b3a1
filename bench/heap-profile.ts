/**
 * The summary of an allocation profile (`npm run bench:profile -- --heap`): bytes allocated per
 * message in the measured window, by package, by file of the library and by function. The profile
 * is V8's sampling heap profiler with the objects the collector freed kept in it (see
 * shared/window.ts), so it counts what was allocated, which is what the garbage collector pays for.
 */
import { addCost, type CallFrame, costTables, type SelfCost } from './frames';

/** A node of V8's sampling heap profile (`HeapProfiler.stopSampling`). */
interface HeapNode {
  callFrame: CallFrame;
  /**
   * Bytes allocated by this function itself, as V8 estimates them from its samples (each sample
   * scaled by the chance that an object of its size was sampled).
   */
  selfSize: number;
  children: HeapNode[];
}

/** The parts of a V8 sampling heap profile read here. */
export interface HeapProfile {
  head: HeapNode;
}

/** The report of an allocation profile of `messages` messages, as lines. */
export function summarizeHeap(profile: HeapProfile, messages: number): string[] {
  const self = new Map<string, SelfCost>();
  const pending = [profile.head];
  for (let node = pending.pop(); node; node = pending.pop()) {
    if (node.selfSize > 0) addCost(self, node.callFrame, node.selfSize);
    pending.push(...node.children);
  }
  const entries = [...self.values()];
  const total = entries.reduce((s, e) => s + e.amount, 0);
  return [
    `${messages.toLocaleString('en-US')} messages; ${(total / 1024 / 1024).toFixed(1)} MiB allocated: ${Math.round(total / messages).toLocaleString('en-US')} bytes per message (freed or not)`,
    '',
    ...costTables(entries, messages, {
      heading: 'B/msg',
      digits: 0,
      whole: total,
      ofWhole: '% bytes',
      byPackage: 'allocated by package',
      ranking: 'by bytes allocated',
    }),
  ];
}
