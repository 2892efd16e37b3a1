import { Inject, Injectable, Logger, type OnApplicationBootstrap, Optional } from '@nestjs/common';
import type { BrokerBackend } from '../backend/broker-backend.interface';
import { describeFailure } from '../errors/failure';
import { MESSAGING_BACKEND, MESSAGING_OPTIONS, MESSAGING_STORE } from '../messaging.constants';
import { type MessageStore, type OutboxBatch, type OutboxRow, outgoingOf } from './message-store';
import type { ResolvedOutboxOptions } from './outbox-options';
import { MessagingInstruments } from '../observability/messaging-metrics';

/** What the relay reports to health: the backlog and, while publishing fails, why. */
export interface OutboxState {
  /** Messages waiting in the outbox, when last counted. */
  readonly pending: number;
  /** The last publish error while the relay is failing; absent once a publish succeeds again. */
  readonly lastError?: string;
  /** Since when (epoch ms) publishing has been failing. */
  readonly failingSince?: number;
}

/** The wait before the next try of a message that failed `attempts` times: 0.5 s doubling, capped. */
export function relayBackoffMs(attempts: number, maxBackoffMs: number): number {
  return Math.min(maxBackoffMs, 500 * 2 ** Math.min(attempts, 20));
}

/** A batch's rows by ordering key, each key's rows in order (the relay publishes keys in parallel). */
export function rowsByKey(rows: readonly OutboxRow[]): OutboxRow[][] {
  const byKey = new Map<string, OutboxRow[]>();
  for (const row of rows) {
    const list = byKey.get(row.orderingKey);
    if (list) list.push(row);
    else byKey.set(row.orderingKey, [row]);
  }
  return [...byKey.values()];
}

const FAILURE_LOG_INTERVAL_MS = 30_000;

/**
 * Publishes what transactions wrote to the outbox, with publisher confirms, and removes it once
 * confirmed: at least once, never lost (a crash between publish and removal publishes again, with
 * the same message id, which an idempotent consumer drops). Messages of one ordering key go in
 * order; a failed one holds back the rest of its key, backing off up to `maxBackoffMs`. Relays of
 * several instances take turns through the store's lease. Wakes when this process commits messages,
 * and polls every `pollIntervalMs` for the others'.
 */
@Injectable()
export class OutboxRelay implements OnApplicationBootstrap {
  private readonly logger = new Logger('MessagingOutbox');
  private readonly options: ResolvedOutboxOptions;
  private running?: Promise<void>;
  private stopped = false;
  private wake?: () => void;
  private wakeRequested = false;
  private detach?: () => void;
  private state: OutboxState = { pending: 0 };
  private lastFailureLog = 0;
  /** The last publish failure of the flush in progress. */
  private batchError?: string;

  constructor(
    // The module's resolved options (`options/` is a floor above the store): the relay reads only these.
    @Inject(MESSAGING_OPTIONS) messaging: { readonly outbox: ResolvedOutboxOptions },
    @Inject(MESSAGING_STORE) private readonly store: MessageStore,
    @Inject(MESSAGING_BACKEND) private readonly backend: BrokerBackend,
    @Optional() instruments?: MessagingInstruments,
  ) {
    this.options = messaging.outbox;
    this.instruments = instruments ?? new MessagingInstruments(undefined);
  }

  private readonly instruments: MessagingInstruments;

  onApplicationBootstrap(): void {
    // A store that is not durable is never written to as an outbox (see MessageStore.durable).
    if (!this.options.relay || !this.store.durable) return;
    this.detach = this.store.onEnqueued(() => this.poke());
    this.running = this.loop();
  }

  /**
   * Stops the loop after the batch in flight, then publishes what the last handlers committed, if the
   * broker is there. Called by the module on shutdown, after the server drained its handlers and
   * before the backend closes; what is left waits in the outbox for the next start.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.detach?.();
    this.poke();
    await this.running;
    if (this.running && this.backend.status === 'connected') {
      await this.flush().catch((error: unknown) =>
        this.failed(describeFailure(error, 'handler-error', new Date()).message),
      );
    }
  }

  /** The backlog and the failure in progress, for health. */
  get status(): OutboxState {
    return this.state;
  }

  /** Publishes what is due now; resolves how many messages were sent. Used by the loop and by tests. */
  async flush(): Promise<number> {
    let sent = 0;
    let failed = 0;
    this.batchError = undefined;
    for (;;) {
      const outcome = await this.store.relay(this.options.batchSize, (batch) =>
        this.publish(batch),
      );
      if (outcome === undefined) break; // another instance's relay holds the lease
      sent += outcome.sent;
      failed += outcome.failed;
      if (outcome.sent + outcome.failed < this.options.batchSize || outcome.failed > 0) break;
    }
    const { pending } = await this.store.backlog();
    this.instruments.outboxBacklog(pending);
    // Failing no more: this relay published again, or nothing waits (another relay sent it).
    if (failed === 0 && (sent > 0 || pending === 0) && this.state.lastError !== undefined) {
      this.logger.log(`Outbox relay publishing again after: ${this.state.lastError}`);
      this.lastFailureLog = 0;
      this.state = { pending };
    } else {
      this.state = { ...this.state, pending };
      if (this.batchError !== undefined) this.failed(this.batchError);
    }
    return sent;
  }

  private poke(): void {
    this.wakeRequested = true;
    this.wake?.();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      this.wakeRequested = false;
      try {
        if (this.backend.status === 'connected') {
          await this.flush();
          await this.store.purgeExpired();
        } else {
          await this.waitForBroker();
        }
      } catch (error) {
        this.failed(describeFailure(error, 'handler-error', new Date()).message);
      }
      if (!this.wakeRequested && !this.stopped) await this.sleep(this.options.pollIntervalMs);
    }
  }

  /** The broker is away: publish nothing, but count what waits, for health. */
  private async waitForBroker(): Promise<void> {
    const { pending } = await this.store.backlog();
    this.instruments.outboxBacklog(pending);
    this.state = { ...this.state, pending };
    if (pending > 0) {
      this.failed(`the broker is ${this.backend.status}; ${pending} message(s) wait in the outbox`);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private async publish(batch: OutboxBatch): Promise<{ sent: number; failed: number }> {
    let sent = 0;
    let failed = 0;
    await Promise.all(
      rowsByKey(batch.rows).map(async (rows) => {
        for (const row of rows) {
          const destination = (row.topic ?? row.queue) as string;
          try {
            await this.backend.publish(outgoingOf(row, row.createdAt.getTime()), {
              mandatory: row.mandatory,
            });
            this.instruments.confirmed(destination);
            await batch.sent(row.id);
            sent++;
          } catch (error) {
            this.instruments.rejected(destination, error);
            const message = describeFailure(error, 'handler-error', new Date()).message;
            const delayMs = relayBackoffMs(row.attempts, this.options.maxBackoffMs);
            await batch.failed(row.id, message, delayMs);
            failed++;
            // Reported once the batch committed, with the backlog counted.
            this.batchError = `message ${row.messageId} to '${row.topic ?? row.queue}' not published (attempt ${row.attempts + 1}): ${message}; trying again in ${delayMs} ms`;
            return; // the rest of this key waits for it
          }
        }
      }),
    );
    return { sent, failed };
  }

  private failed(message: string): void {
    const now = Date.now();
    this.state = {
      ...this.state,
      lastError: message,
      failingSince: this.state.failingSince ?? now,
    };
    if (now - this.lastFailureLog >= FAILURE_LOG_INTERVAL_MS) {
      this.lastFailureLog = now;
      this.logger.warn(`Outbox relay: ${message}`);
    }
  }
}
