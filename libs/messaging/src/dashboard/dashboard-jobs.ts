import { randomBytes } from 'node:crypto';
import type { DeadLetter } from '../backend/broker-backend.interface';
import type { DeadLetterService } from '../dead-letters/dead-letter.service';
import type { DashboardJob } from './dashboard-api';

/** How long a finished job can still be read (`GET api/jobs/:id`). */
export const JOB_KEPT_MS = 5 * 60_000;

/** Letters replayed per `replayWhere` of a group replay: the grain of its progress. */
export const REPLAY_CHUNK = 50;

/** The dead letters of one connection, as the dashboard reads and acts on them. */
export interface DeadLetterSource {
  readonly connection: string;
  /** Every letter, oldest first; `visit` returns false to stop. */
  scan(visit: (letter: DeadLetter) => boolean | void): Promise<void>;
  readonly service: Pick<DeadLetterService, 'replay' | 'replayWhere' | 'purgeWhere'>;
}

/** What a running job reports. */
export interface JobProgress {
  total: number;
  done: number;
  readonly failed: { id: string; error: string }[];
}

interface JobEntry {
  readonly job: Omit<DashboardJob, 'total' | 'done' | 'failed' | 'finished'>;
  readonly progress: JobProgress;
  finishedAt?: number;
}

/**
 * The group replays and purges of the dashboard: each runs in the background under a random id,
 * its progress read by the page, kept {@link JOB_KEPT_MS} after it ends (in this process only).
 */
export class DashboardJobs {
  private readonly jobs = new Map<string, JobEntry>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Starts `run` as a job; a throw ends it with the error among its failures. */
  start(
    kind: DashboardJob['kind'],
    fingerprint: string,
    run: (progress: JobProgress) => Promise<void>,
  ): DashboardJob {
    this.prune();
    const entry: JobEntry = {
      job: { id: randomBytes(12).toString('hex'), kind, fingerprint },
      progress: { total: 0, done: 0, failed: [] },
    };
    this.jobs.set(entry.job.id, entry);
    void run(entry.progress)
      .catch((error: unknown) => {
        entry.progress.failed.push({ id: '*', error: messageOf(error) });
      })
      .finally(() => {
        entry.finishedAt = this.now();
      });
    return this.view(entry);
  }

  get(id: string): DashboardJob | undefined {
    this.prune();
    const entry = this.jobs.get(id);
    return entry && this.view(entry);
  }

  private view({ job, progress, finishedAt }: JobEntry): DashboardJob {
    const { total, done, failed } = progress;
    return { ...job, total, done, failed: [...failed], finished: finishedAt !== undefined };
  }

  private prune(): void {
    const now = this.now();
    for (const [id, { finishedAt }] of this.jobs) {
      if (finishedAt !== undefined && now - finishedAt > JOB_KEPT_MS) this.jobs.delete(id);
    }
  }
}

/** The ids of each source's letters that `select` picks. */
export async function pickIds(
  sources: readonly DeadLetterSource[],
  select: (letter: DeadLetter) => boolean,
): Promise<Map<DeadLetterSource, string[]>> {
  const picked = new Map<DeadLetterSource, string[]>();
  for (const source of sources) {
    const ids: string[] = [];
    await source.scan((letter) => void (select(letter) && ids.push(letter.id)));
    picked.set(source, ids);
  }
  return picked;
}

/**
 * Replays the letters picked, {@link REPLAY_CHUNK} at a time through `replayWhere` (one pass of the
 * queue each), counting each replayed or failed as it goes.
 */
export async function replayPicked(
  picked: Map<DeadLetterSource, string[]>,
  progress: JobProgress,
): Promise<void> {
  progress.total = countOf(picked);
  for (const [source, ids] of picked) {
    for (let from = 0; from < ids.length; from += REPLAY_CHUNK) {
      const chunk = new Set(ids.slice(from, from + REPLAY_CHUNK));
      const { replayed, failed } = await source.service.replayWhere((l) => chunk.has(l.id));
      progress.done += replayed.length;
      progress.failed.push(...failed);
      for (const id of [...replayed, ...failed.map((f) => f.id)]) chunk.delete(id);
      for (const id of chunk) {
        progress.failed.push({ id, error: 'not found (replayed or purged meanwhile)' });
      }
    }
  }
}

/** Deletes the letters picked, one `purgeWhere` per connection. */
export async function purgePicked(
  picked: Map<DeadLetterSource, string[]>,
  progress: JobProgress,
): Promise<void> {
  progress.total = countOf(picked);
  for (const [source, list] of picked) {
    if (list.length === 0) continue;
    const ids = new Set(list);
    try {
      const { purged } = await source.service.purgeWhere((letter) => ids.has(letter.id));
      progress.done += purged.length;
    } catch (error) {
      progress.failed.push({ id: `connection ${source.connection}`, error: messageOf(error) });
    }
  }
}

function countOf(picked: Map<DeadLetterSource, string[]>): number {
  return [...picked.values()].reduce((sum, ids) => sum + ids.length, 0);
}

/** An error's message (or the thrown value as text). */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
