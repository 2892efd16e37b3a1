/**
 * The measured window of a workload: what the child spent in it besides wall-clock time. CPU time
 * (`process.cpuUsage()`, user + system, the whole child) and garbage-collection pauses (V8's 'gc'
 * performance entries) per message make figures comparable on a noisy, shared machine, where the
 * rate alone moves with the neighbours; with `npm run bench:profile` the window is also profiled
 * (the inspector's sampling profiler, started and stopped around it, so start-up and warm-up are
 * not in the profile): CPU for a `.cpuprofile` path, allocations for a `.heapprofile` one (V8's
 * sampling heap profiler, counting what the collector freed too, so it is what was allocated in
 * the window, not what stayed). Plain Node only: compiled into the golevelup package too.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { dirname } from 'node:path';
import { performance, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';

/** What one window cost, per message. */
export interface WindowCost {
  readonly cpuUs: number;
  readonly gcUs: number;
}

/** Sampling interval of the profile, in µs (V8's default is 1000: too coarse for µs per message). */
const SAMPLING_US = 200;
/** Mean bytes between two samples of the heap profile (V8's default, 32 KiB, is too coarse too). */
const SAMPLING_BYTES = 128;

/** The inspector's commands for each kind of profile, by the extension of the file written. */
const PROFILERS = {
  cpu: {
    start: [
      ['Profiler.enable'],
      ['Profiler.setSamplingInterval', { interval: SAMPLING_US }],
      ['Profiler.start'],
    ],
    stop: 'Profiler.stop',
  },
  heap: {
    start: [
      ['HeapProfiler.enable'],
      [
        'HeapProfiler.startSampling',
        {
          samplingInterval: SAMPLING_BYTES,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: true,
        },
      ],
    ],
    stop: 'HeapProfiler.stopSampling',
  },
} as const;

function profilerFor(path: string): (typeof PROFILERS)[keyof typeof PROFILERS] {
  return path.endsWith('.heapprofile') ? PROFILERS.heap : PROFILERS.cpu;
}

/**
 * Every 'gc' entry of the process since the first window opened: entries are delivered
 * asynchronously, so the window asks for the pending ones (`takeRecords()`) when it closes.
 */
let gcEntries: PerformanceEntry[] = [];
let gcObserver: PerformanceObserver | undefined;

function observeGc(): PerformanceObserver {
  if (!gcObserver) {
    gcObserver = new PerformanceObserver((list) => {
      gcEntries.push(...list.getEntries());
    });
    gcObserver.observe({ entryTypes: ['gc'] });
  }
  return gcObserver;
}

/** An open window: {@link MeasuredWindow.open} starts it, {@link MeasuredWindow.close} ends it. */
export class MeasuredWindow {
  private constructor(
    private readonly cpu: NodeJS.CpuUsage,
    private readonly startedAt: number,
    private readonly profiler?: Session,
    private readonly profilePath?: string,
  ) {}

  /**
   * Opens a window now; with `profilePath`, once the profiler runs (so that what is profiled is the
   * window only).
   */
  static async open(profilePath?: string): Promise<MeasuredWindow> {
    observeGc();
    gcEntries = [];
    let profiler: Session | undefined;
    if (profilePath) {
      profiler = new Session();
      profiler.connect();
      for (const [method, params] of profilerFor(profilePath).start)
        await post(profiler, method, params);
    }
    return new MeasuredWindow(process.cpuUsage(), performance.now(), profiler, profilePath);
  }

  /** Closes the window: its cost per message (`messages` handled in it); writes the profile. */
  async close(messages: number): Promise<WindowCost> {
    const used = process.cpuUsage(this.cpu);
    const endedAt = performance.now();
    if (this.profiler && this.profilePath) {
      const { profile } = (await post(this.profiler, profilerFor(this.profilePath).stop)) as {
        profile: unknown;
      };
      this.profiler.disconnect();
      mkdirSync(dirname(this.profilePath), { recursive: true });
      writeFileSync(this.profilePath, JSON.stringify(profile));
    }
    gcEntries.push(...(gcObserver?.takeRecords() ?? []));
    let gcMs = 0;
    for (const e of gcEntries) {
      if (e.startTime >= this.startedAt && e.startTime < endedAt) gcMs += e.duration;
    }
    gcEntries = [];
    const n = Math.max(1, messages);
    return { cpuUs: (used.user + used.system) / n, gcUs: (gcMs * 1000) / n };
  }
}

function post(session: Session, method: string, params?: object): Promise<unknown> {
  return new Promise((resolve, reject) =>
    session.post(method, params ?? {}, (error, result) =>
      error ? reject(error) : resolve(result),
    ),
  );
}
