import { AsyncLocalStorage } from 'node:async_hooks';
import { Inject, Injectable } from '@nestjs/common';
import { MESSAGING_STORE } from '../messaging.constants';
import type { MessageStore, StoreTransaction } from './message-store';

/** The store transaction of the code running now: `@Producer` publishes inside it go to the outbox. */
const scope = new AsyncLocalStorage<StoreTransaction>();

/** The transaction in scope, if any. */
export function currentStoreTransaction(): StoreTransaction | undefined {
  return scope.getStore();
}

/** Runs `work` with `tx` in scope. */
export function withinStoreTransaction<T>(
  tx: StoreTransaction,
  work: () => Promise<T>,
): Promise<T> {
  return scope.run(tx, work);
}

/**
 * Transactions of the message store, for writes that must commit with the messages they announce
 * (the transactional outbox). Inside `run()` and `join()`, and inside `@Consume(..., { idempotent:
 * true })` handlers, every `publish()` and `emit()` writes the message to the outbox in the same
 * transaction; the relay sends it once that transaction committed. Requests are sent at once.
 *
 * @example
 * await this.transactions.run(async (client: PoolClient) => {
 *   await client.query('INSERT INTO orders ...', [...]);
 *   await this.orderCreated.publish({ orderId }); // committed with the insert, sent by the relay
 * });
 */
@Injectable()
export class MessagingTransactions {
  constructor(@Inject(MESSAGING_STORE) private readonly store: MessageStore) {}

  /**
   * Runs `work` in a transaction of the store (a `pg` client with `PostgresMessageStore`, your ORM's
   * handle with its `transaction` option, `undefined` in memory), committed when `work` resolves.
   * Inside another `run()` or a transaction-scoped handler, `work` joins that transaction instead.
   */
  run<T, Native = any>(work: (native: Native) => Promise<T>): Promise<T> {
    const current = scope.getStore();
    if (current) return work(current.native as Native);
    return this.store.transaction((tx) => scope.run(tx, () => work(tx.native as Native)));
  }

  /**
   * Runs `work` with a transaction your code opened (a `pg` client after BEGIN, a TypeORM
   * `EntityManager`, a Prisma transaction client): outbox messages are written through it and commit
   * or roll back with it.
   */
  join<T>(native: unknown, work: () => Promise<T>): Promise<T> {
    return scope.run(this.store.join(native), work);
  }

  /** The handle of the transaction in scope (see `run()`), or `undefined` outside one. */
  current<Native = any>(): Native | undefined {
    return scope.getStore()?.native as Native | undefined;
  }

  /** True inside `run()`, `join()` or a transaction-scoped handler. */
  get active(): boolean {
    return scope.getStore() !== undefined;
  }
}
