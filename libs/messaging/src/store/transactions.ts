import { AsyncLocalStorage } from 'node:async_hooks';
import { Inject, Injectable, Optional } from '@nestjs/common';
import type { BrokerBackend } from '../backend/broker-backend.interface';
import { MessagingConfigError } from '../errors/messaging.errors';
import { MESSAGING_BACKEND, MESSAGING_STORE } from '../messaging.constants';
import { MessagingInstruments } from '../observability/messaging-metrics';
import {
  type MessageStore,
  type OutboxMessage,
  outgoingOf,
  type StoreTransaction,
} from './message-store';

const TRANSACTION_ENDED =
  'publish() in a transaction that has ended (a publish the handler or run() did not await): await it inside the work';

/**
 * A store transaction while its work runs. The scope outlives the work in whatever the work left
 * running (a publish it did not await, a timer): once the work settled the scope is `ended`, its
 * writes are refused and it is no transaction any more for `run()` and `current()`.
 */
interface TransactionScope {
  readonly tx: StoreTransaction;
  /** The broker its messages go to (after the commit, through the outbox relay, on a durable store). */
  readonly backend: BrokerBackend;
  ended: boolean;
}

/** The store transaction of the code running now: `@Producer` publishes inside it go to the outbox. */
const scope = new AsyncLocalStorage<TransactionScope>();

/**
 * The transaction in scope whose messages go to `backend`, if any; after it ended, one that refuses
 * to publish (rather than publishing straight to the broker what its author meant to commit with the
 * transaction). A publish on another connection than the transaction's is sent at once, as outside one.
 */
export function currentStoreTransaction(backend: BrokerBackend): StoreTransaction | undefined {
  const current = scope.getStore();
  // A publish on another connection (another broker) than the transaction's is not part of it.
  return current?.backend === backend ? current.tx : undefined;
}

/** The transaction in scope while its work runs. */
function liveScope(backend: BrokerBackend): TransactionScope | undefined {
  const current = scope.getStore();
  // The transaction of another connection's store is not this connection's.
  return current && !current.ended && current.backend === backend ? current : undefined;
}

/** Runs `work` with `tx` in scope; `tx` refuses writes once `work` settled. */
async function inScope<T>(
  tx: StoreTransaction,
  backend: BrokerBackend,
  work: (tx: StoreTransaction) => Promise<T>,
): Promise<T> {
  const current: TransactionScope = {
    ended: false,
    backend,
    tx: {
      native: tx.native,
      claim: async (key, ttlMs) => {
        if (current.ended) throw new MessagingConfigError(TRANSACTION_ENDED);
        return tx.claim(key, ttlMs);
      },
      enqueue: async (message) => {
        if (current.ended) throw new MessagingConfigError(TRANSACTION_ENDED);
        return tx.enqueue(message);
      },
    },
  };
  try {
    return await scope.run(current, () => work(current.tx));
  } finally {
    current.ended = true;
  }
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
  instruments?: MessagingInstruments,
): Promise<T> {
  return store.transaction(async (tx) => {
    if (store.durable) return inScope(tx, backend, work);
    const staged: OutboxMessage[] = [];
    const staging: StoreTransaction = {
      native: tx.native,
      claim: (key, ttlMs) => tx.claim(key, ttlMs),
      enqueue: async (message) => void staged.push(message),
    };
    const result = await inScope(staging, backend, work);
    const now = Date.now();
    for (const message of staged) {
      const destination = (message.topic ?? message.queue) as string;
      try {
        await backend.publish(outgoingOf(message, now), { mandatory: message.mandatory });
      } catch (error) {
        instruments?.rejected(destination, error);
        throw error;
      }
      instruments?.confirmed(destination);
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
    @Optional() private readonly instruments?: MessagingInstruments,
  ) {}

  /**
   * Runs `work` in a transaction of the store (a `pg` client with `PostgresMessageStore`, your ORM's
   * handle with its `transaction` option, `undefined` in memory), committed when `work` resolves.
   * Inside another `run()` or a transaction-scoped handler, `work` joins that transaction instead.
   */
  run<T, Native = any>(work: (native: Native) => Promise<T>): Promise<T> {
    const current = liveScope(this.backend);
    if (current) return work(current.tx.native as Native);
    return inStoreTransaction(
      this.store,
      this.backend,
      (tx) => work(tx.native as Native),
      this.instruments,
    );
  }

  /**
   * Runs `work` with a transaction your code opened (a `pg` client after BEGIN, a TypeORM
   * `EntityManager`, a Prisma transaction client): outbox messages are written through it and commit
   * or roll back with it. Needs a durable store (`PostgresMessageStore`). Publish and await inside
   * `work`: once it settled, the transaction is refused to what it left running.
   */
  join<T>(native: unknown, work: () => Promise<T>): Promise<T> {
    return inScope(this.store.join(native), this.backend, () => work());
  }

  /** The handle of the transaction in scope (see `run()`), or `undefined` outside one. */
  current<Native = any>(): Native | undefined {
    return liveScope(this.backend)?.tx.native as Native | undefined;
  }

  /** True inside `run()`, `join()` or a transaction-scoped handler. */
  get active(): boolean {
    return liveScope(this.backend) !== undefined;
  }
}
