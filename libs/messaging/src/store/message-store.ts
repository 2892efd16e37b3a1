/**
 * The contract between the messaging core and a store of inbox entries and outbox messages: what makes
 * a handler's effects happen once (inbox) and a publish commit with the data it announces (outbox).
 *
 * | Piece    | Written by                                   | Read by                      | Removed                     |
 * | -------- | -------------------------------------------- | ---------------------------- | --------------------------- |
 * | inbox    | an `idempotent` handler's transaction: one    | the next delivery of the     | `purgeExpired()` once its   |
 * |          | entry per service, route and message id       | same id (duplicate: skipped) | time to live passed         |
 * | outbox   | `publish()` inside a transaction scope        | the relay (`relay()`)        | when the broker confirmed   |
 *
 * A store does mechanics only; when to claim, what to publish and how long to back off are decided by
 * `inbox.ts` and `outbox-relay.ts`. Every store passes the shared suite in `testing/store-contract.ts`.
 */
import type { MessageHeaders, OutgoingMessage } from '../backend/broker-backend.interface';
import { MessagingHeaders } from '../backend/message-headers';

/** What the inbox remembers: one message handled by one route of one service. */
export interface InboxKey {
  readonly service: string;
  /** The route (`Class.method`) that handled it. */
  readonly route: string;
  readonly messageId: string;
}

/**
 * A message to publish once its transaction commits, encoded as the backend will send it. Built by
 * {@link outboxMessageOf} and read back by {@link outgoingOf}: a compressed body's content encoding
 * is kept in `headers` (see there), so a store keeps every field below as it is and nothing else.
 */
export interface OutboxMessage {
  /** Messages of one key are published in the order they were written. */
  readonly orderingKey: string;
  readonly topic?: string;
  readonly queue?: string;
  readonly messageId: string;
  readonly correlationId?: string;
  readonly contentType?: string;
  /** The message's headers; `x-messaging-compression` holds its content encoding, when it has one. */
  readonly headers: MessageHeaders;
  readonly body: Buffer;
  readonly delayMs?: number;
  /** Reject (and back off) when no queue receives it, rather than count it as sent. */
  readonly mandatory: boolean;
}

/** An outbox message as the relay reads it back. */
export interface OutboxRow extends OutboxMessage {
  readonly id: string;
  /** Failed publishes so far. */
  readonly attempts: number;
  readonly createdAt: Date;
}

/** One transaction of a store, opened by the store or joined from the application. */
export interface StoreTransaction {
  /**
   * The transaction as its owner knows it: a `pg` client, a TypeORM `EntityManager`, a Prisma
   * transaction client; `undefined` in memory. Run the handler's own writes through it.
   */
  readonly native: unknown;
  /**
   * Remembers `key` as handled for `ttlMs` (the store's clock) if this transaction commits. Resolves
   * false when the key was handled already and has not expired: the caller must skip the work. While
   * another transaction holds the same key it waits for that one to end: false if it committed, true
   * if it rolled back.
   */
  claim(key: InboxKey, ttlMs: number): Promise<boolean>;
  /** Adds a message to the outbox; the relay publishes it once this transaction committed. */
  enqueue(message: OutboxMessage): Promise<void>;
}

/** Due outbox rows handed to the relay, within one transaction of the store. */
export interface OutboxBatch {
  /** Oldest first; never a row whose key has an earlier row waiting for its retry time. */
  readonly rows: readonly OutboxRow[];
  /** The broker confirmed it: remove it when the batch commits. */
  sent(id: string): Promise<void>;
  /** Publishing failed: keep it, not due again for `delayMs` (the store's clock). */
  failed(id: string, error: string, delayMs: number): Promise<void>;
}

/** How much the outbox holds: the relay's backlog. */
export interface OutboxBacklog {
  readonly pending: number;
  /** When the oldest pending message was written. */
  readonly oldestCreatedAt?: Date;
}

/** Where inbox entries and outbox messages are kept: `InMemoryMessageStore`, `PostgresMessageStore`. */
export interface MessageStore {
  /** For logs: `memory`, `postgres`. */
  readonly kind: string;
  /**
   * True when what commits survives a crash of this process (a database). A store that is not
   * durable (memory) is not used as an outbox: what a transaction publishes is sent, and confirmed,
   * before it commits, since a message kept in memory after its delivery was acknowledged would be
   * lost with the process.
   */
  readonly durable: boolean;
  /** Creates what the store needs (tables) when it is missing. Idempotent. */
  migrate(): Promise<void>;
  /**
   * Called once when the app starts: connects, and creates the tables or fails with an error that
   * says how to, as the store's options ask.
   */
  init(): Promise<void>;
  /** Runs `work` in a new transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T>;
  /** Uses a transaction the application opened (and will commit) itself. */
  join(native: unknown): StoreTransaction;
  /**
   * Hands up to `limit` due outbox rows to `work` in one transaction that also holds the relay lease,
   * so that two relays never publish the same rows. Resolves `undefined` without calling `work` when
   * another relay holds the lease.
   */
  relay<T>(limit: number, work: (batch: OutboxBatch) => Promise<T>): Promise<T | undefined>;
  backlog(): Promise<OutboxBacklog>;
  /** Removes the inbox entries that expired; resolves how many. */
  purgeExpired(): Promise<number>;
  /** Calls `listener` after a transaction that enqueued messages committed in this process. */
  onEnqueued(listener: () => void): () => void;
  close(): Promise<void>;
}

/**
 * The outbox message that publishes `message` once its transaction commits (`mandatory` as the
 * publish asked; `orderingKey` defaults to its topic or queue). Stores have no column for the
 * body's content encoding, so it is kept in the stored headers under `x-messaging-compression` (the
 * name the codec used before content encoding was a property of its own: rows written then read
 * back the same), and {@link outgoingOf} turns it back into `contentEncoding`. An uncompressed
 * message keeps its headers object as it is.
 */
export function outboxMessageOf(
  message: OutgoingMessage,
  mandatory: boolean,
  orderingKey?: string,
): OutboxMessage {
  const encoding = message.contentEncoding;
  return {
    orderingKey: orderingKey ?? message.topic ?? (message.queue as string),
    topic: message.topic,
    queue: message.queue,
    messageId: message.messageId,
    correlationId: message.correlationId,
    contentType: message.contentType,
    headers:
      encoding === undefined
        ? message.headers
        : { ...message.headers, [MessagingHeaders.COMPRESSION]: encoding },
    body: message.body,
    delayMs: message.delayMs,
    mandatory,
  };
}

/**
 * The message the backend publishes for an outbox message (written at `createdAt`): the inverse of
 * {@link outboxMessageOf}, whose stored `x-messaging-compression` header becomes `contentEncoding`
 * again (and leaves the headers).
 */
export function outgoingOf(message: OutboxMessage, createdAt: number): OutgoingMessage {
  const encoding = message.headers[MessagingHeaders.COMPRESSION];
  return {
    topic: message.topic,
    queue: message.queue,
    body: message.body,
    headers: typeof encoding === 'string' ? withoutEncoding(message.headers) : message.headers,
    messageId: message.messageId,
    correlationId: message.correlationId,
    contentType: message.contentType,
    contentEncoding: typeof encoding === 'string' ? encoding : undefined,
    timestamp: createdAt,
    delayMs: message.delayMs,
  };
}

function withoutEncoding(headers: MessageHeaders): MessageHeaders {
  const { [MessagingHeaders.COMPRESSION]: _encoding, ...rest } = headers;
  return rest;
}
