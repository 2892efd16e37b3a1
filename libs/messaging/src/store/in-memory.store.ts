import { MessagingConfigError } from '../errors/messaging.errors';
import type {
  InboxKey,
  MessageStore,
  OutboxBacklog,
  OutboxBatch,
  OutboxMessage,
  OutboxRow,
  StoreTransaction,
} from './message-store';

interface MemoryRow extends OutboxRow {
  availableAt: number;
  lastError?: string;
}

const PURGE_INTERVAL_MS = 60_000;

/** A key being claimed by a transaction that has not ended yet. */
interface PendingClaim {
  readonly owner: MemoryTransaction;
  /** Resolves when the owner commits or rolls back. */
  readonly ended: Promise<void>;
}

/**
 * Inbox and outbox in this process's memory: the default store, for tests, the demo and one
 * instance. It deduplicates within one process only and forgets everything on restart; use
 * `PostgresMessageStore` when several instances share the work or a crash must not repeat an effect.
 * Its transactions are staged writes applied when the work resolves: they cover the inbox, not your
 * own data. Not durable: the module publishes what its transactions publish before they commit (an
 * outbox in memory would lose them with the process), so its outbox is used only by its contract.
 */
export class InMemoryMessageStore implements MessageStore {
  readonly kind = 'memory';
  readonly durable = false;
  /** Inbox: key -> expiry (epoch ms). */
  private readonly handled = new Map<string, number>();
  private readonly claiming = new Map<string, PendingClaim>();
  private rows: MemoryRow[] = [];
  private nextId = 1;
  private relaying = false;
  private readonly listeners = new Set<() => void>();
  private lastPurge = Date.now();
  private waiting = 0;

  async migrate(): Promise<void> {}

  async init(): Promise<void> {}

  async transaction<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    const tx = new MemoryTransaction(this);
    let result: T;
    try {
      result = await work(tx);
    } catch (error) {
      tx.end(false);
      throw error;
    }
    tx.end(true);
    return result;
  }

  join(): StoreTransaction {
    throw new MessagingConfigError(
      'InMemoryMessageStore has no database transaction to join: use MessagingTransactions.run(), ' +
        'or a PostgresMessageStore to join a transaction of your own',
    );
  }

  async relay<T>(limit: number, work: (batch: OutboxBatch) => Promise<T>): Promise<T | undefined> {
    if (this.relaying) return undefined;
    this.relaying = true;
    try {
      const now = Date.now();
      const waiting = new Set<string>();
      const due: MemoryRow[] = [];
      for (const row of this.rows) {
        if (due.length >= limit) break;
        if (waiting.has(row.orderingKey)) continue;
        if (row.availableAt > now) waiting.add(row.orderingKey);
        else due.push(row);
      }
      const sent = new Set<string>();
      const failed = new Map<string, { error: string; delayMs: number }>();
      const result = await work({
        rows: due.map((row) => ({ ...row })),
        sent: async (id) => void sent.add(id),
        failed: async (id, error, delayMs) => void failed.set(id, { error, delayMs }),
      });
      this.rows = this.rows.filter((row) => !sent.has(row.id));
      for (const row of this.rows) {
        const failure = failed.get(row.id);
        if (!failure) continue;
        Object.assign(row, {
          attempts: row.attempts + 1,
          lastError: failure.error,
          availableAt: Date.now() + failure.delayMs,
        });
      }
      return result;
    } finally {
      this.relaying = false;
    }
  }

  async backlog(): Promise<OutboxBacklog> {
    return { pending: this.rows.length, oldestCreatedAt: this.rows[0]?.createdAt };
  }

  async purgeExpired(): Promise<number> {
    const now = Date.now();
    let purged = 0;
    for (const [key, expiresAt] of this.handled) {
      if (expiresAt <= now) {
        this.handled.delete(key);
        purged++;
      }
    }
    return purged;
  }

  onEnqueued(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {}

  /** Claims waiting for another transaction to end (for the store contract). */
  get waitingClaims(): number {
    return this.waiting;
  }

  /** @internal */
  async claimFor(tx: MemoryTransaction, key: string, ttlMs: number): Promise<boolean> {
    for (;;) {
      const pending = this.claiming.get(key);
      if (pending?.owner === tx) return true;
      if (pending) {
        this.waiting++;
        await pending.ended.finally(() => this.waiting--);
        continue;
      }
      const expiresAt = this.handled.get(key);
      if (expiresAt !== undefined && expiresAt > Date.now()) return false;
      let release!: () => void;
      const ended = new Promise<void>((resolve) => (release = resolve));
      this.claiming.set(key, { owner: tx, ended });
      tx.claims.push({ key, ttlMs, release });
      return true;
    }
  }

  /** @internal Applies (or drops) what a transaction staged. */
  finish(tx: MemoryTransaction, commit: boolean): void {
    // No relay runs on this store: expired entries go as new ones come, at most once a minute.
    if (tx.claims.length > 0 && Date.now() - this.lastPurge >= PURGE_INTERVAL_MS) {
      this.lastPurge = Date.now();
      void this.purgeExpired();
    }
    for (const claim of tx.claims) {
      if (commit) this.handled.set(claim.key, Date.now() + claim.ttlMs);
      this.claiming.delete(claim.key);
      claim.release();
    }
    if (!commit || tx.staged.length === 0) return;
    const createdAt = new Date();
    for (const message of tx.staged) {
      this.rows.push({
        ...message,
        id: String(this.nextId++),
        attempts: 0,
        createdAt,
        availableAt: 0,
      });
    }
    for (const listener of this.listeners) listener();
  }
}

class MemoryTransaction implements StoreTransaction {
  readonly native = undefined;
  readonly claims: { key: string; ttlMs: number; release: () => void }[] = [];
  readonly staged: OutboxMessage[] = [];
  private ended = false;

  constructor(private readonly store: InMemoryMessageStore) {}

  claim(key: InboxKey, ttlMs: number): Promise<boolean> {
    this.assertOpen();
    return this.store.claimFor(
      this,
      JSON.stringify([key.service, key.route, key.messageId]),
      ttlMs,
    );
  }

  async enqueue(message: OutboxMessage): Promise<void> {
    this.assertOpen();
    this.staged.push(message);
  }

  end(commit: boolean): void {
    this.ended = true;
    this.store.finish(this, commit);
  }

  private assertOpen(): void {
    if (this.ended) {
      throw new MessagingConfigError(
        'This transaction has ended: claim and enqueue inside the work of transaction() only',
      );
    }
  }
}
