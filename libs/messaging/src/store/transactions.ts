import { AsyncLocalStorage } from 'node:async_hooks';
import { Inject, Injectable } from '@nestjs/common';
import type { BrokerBackend } from '../backend/broker-backend.interface';
import { MessagingConfigError } from '../errors/messaging.errors';
import { MESSAGING_BACKEND, MESSAGING_STORE } from '../messaging.constants';
import {
  type MessageStore,
  type OutboxMessage,
  outgoingOf,
  type StoreTransaction,
} from './message-store';

const TRANSACTION_ENDED =
  'publish() in a transaction that has ended (a publish the handler or run() did not await): await it inside the work';

/** The store transaction of the code running now: `@Producer` publishes inside it go to the outbox. */
const scope = new AsyncLocalStorage<StoreTransaction>();

/** The transaction in scope, if any. */
export function currentStoreTransaction(): StoreTransaction | undefined {
  return scope.getStore();
}

/**
 * Runs `work` in a new transaction of `store` with it in scope, committed when `work` resolves.
 *
 * A durable store keeps what `work` publishes in its outbox, for the relay. A store that is not
 * durable (memory) cannot: a message held in memory after the commit (and after the delivery that
 * caused it was acknowledged) would die with the process. Its messages are published through
 * `backend` once `work` resolved, before the commit, each awaited until the broker confirmed it; a
 * refused one rolls the transaction back, so its handler is retried. Messages of a failed `work` are
 * never sent, on either kind of store.
 */
export function inStoreTransaction<T>(
  store: MessageStore,
  backend: BrokerBackend,
  work: (tx: StoreTransaction) => Promise<T>,
): Promise<T> {
  return store.transaction(async (tx) => {
    if (store.durable) return scope.run(tx, () => work(tx));
    const staged: OutboxMessage[] = [];
    let open = true;
    const staging: StoreTransaction = {
      native: tx.native,
      claim: (key, ttlMs) => tx.claim(key, ttlMs),
      enqueue: async (message) => {
        if (!open) throw new MessagingConfigError(TRANSACTION_ENDED);
        staged.push(message);
      },
    };
    let result: T;
    try {
      result = await scope.run(staging, () => work(staging));
    } finally {
      open = false;
    }
    const now = Date.now();
    for (const message of staged) {
      await backend.publish(outgoingOf(message, now), { mandatory: message.mandatory });
    }
    return result;
  });
}

/**
 * Transactions of the message store, for writes that must commit with the messages they announce
 * (the transactional outbox). Inside `run()` and `join()`, and inside `@Consume(..., { idempotent:
 * true })` handlers, every `publish()` and `emit()` writes the message to the outbox in the same
 * transaction; the relay sends it once that transaction committed. Requests are sent at once. On the
 * in-memory store, which has no durable outbox, the messages are sent when `work` resolves, before
 * the commit, and `run()` resolves once the broker confirmed them.
 *
 * @example
 * await this.transactions.run(async (client: PoolClient) => {
 *   await client.query('INSERT INTO orders ...', [...]);
 *   await this.orderCreated.publish({ orderId }); // committed with the insert, sent by the relay
 * });
 */
@Injectable()
export class MessagingTransactions {
  constructor(
    @Inject(MESSAGING_STORE) private readonly store: MessageStore,
    @Inject(MESSAGING_BACKEND) private readonly backend: BrokerBackend,
  ) {}

  /**
   * Runs `work` in a transaction of the store (a `pg` client with `PostgresMessageStore`, your ORM's
   * handle with its `transaction` option, `undefined` in memory), committed when `work` resolves.
   * Inside another `run()` or a transaction-scoped handler, `work` joins that transaction instead.
   */
  run<T, Native = any>(work: (native: Native) => Promise<T>): Promise<T> {
    const current = scope.getStore();
    if (current) return work(current.native as Native);
    return inStoreTransaction(this.store, this.backend, (tx) => work(tx.native as Native));
  }

  /**
   * Runs `work` with a transaction your code opened (a `pg` client after BEGIN, a TypeORM
   * `EntityManager`, a Prisma transaction client): outbox messages are written through it and commit
   * or roll back with it. Needs a durable store (`PostgresMessageStore`).
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
