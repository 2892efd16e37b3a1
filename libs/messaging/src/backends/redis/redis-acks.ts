/**
 * Batched acknowledgements of one subscription: the deliveries whose handlers succeeded in one turn of
 * the event loop are acknowledged together, one command per stream (`XACK stream group id…`, or for a
 * queue stream of ours `ACK_DELETE_SCRIPT`, which also deletes them), instead of a transaction per
 * delivery.
 *
 * At-least-once is unchanged: an acknowledgement is queued only once its handler settled (the
 * subscription calls {@link AckBatcher.ack} from the settlement), and only plain acknowledgements are
 * batched: a retry, a dead letter or a requeue writes its copy and acknowledges its original in one
 * script (`SETTLE_SCRIPT`), never here. A failed command fails the deliveries of its batch only: they
 * stay pending and are delivered again after `claimIdleMs`, as a failed `MULTI` left them before.
 */

/** Sends one batch: acknowledges `ids` of `stream` (and deletes them from a queue stream of ours). */
export type AckSender = (stream: string, ids: readonly string[]) => Promise<unknown>;

/** Runs `flush` once the current turn's callbacks ran (`process.nextTick` by default). */
export type AckScheduler = (flush: () => void) => void;

/** Most ids in one command (a Lua `unpack` takes about 8,000 at most). */
export const MAX_ACK_BATCH = 1_000;

/** The acknowledgements of one stream waiting for the next flush. */
class AckRun {
  readonly ids: string[] = [];
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (error: Error) => void;

  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

export class AckBatcher {
  private runs = new Map<string, AckRun>();
  private scheduled = false;
  private readonly flushNow = () => this.flush();

  constructor(
    private readonly send: AckSender,
    private readonly schedule: AckScheduler = (flush) => process.nextTick(flush),
  ) {}

  /**
   * Acknowledges entry `id` of `stream` with the others of this turn; resolves once Redis did, or
   * rejects with the error of the command that carried it.
   */
  ack(stream: string, id: string): Promise<void> {
    let run = this.runs.get(stream);
    if (run === undefined) {
      run = new AckRun();
      this.runs.set(stream, run);
      if (!this.scheduled) {
        this.scheduled = true;
        this.schedule(this.flushNow);
      }
    }
    run.ids.push(id);
    if (run.ids.length >= MAX_ACK_BATCH) {
      this.runs.delete(stream);
      this.sendRun(stream, run);
    }
    return run.promise;
  }

  /** Sends what is waiting now (called by the scheduler; also usable to flush before a close). */
  flush(): void {
    this.scheduled = false;
    if (this.runs.size === 0) return;
    const runs = this.runs;
    this.runs = new Map();
    for (const [stream, run] of runs) this.sendRun(stream, run);
  }

  private sendRun(stream: string, run: AckRun): void {
    let sent: Promise<unknown>;
    try {
      sent = this.send(stream, run.ids);
    } catch (error) {
      sent = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    sent.then(run.resolve, run.reject);
  }
}
