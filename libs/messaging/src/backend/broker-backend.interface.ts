/**
 * The contract between the messaging core and a broker.
 *
 * A backend does mechanics only: connect, close, publish, subscribe, and carry out the
 * {@link Settlement} the core decided for each delivery (ack, retry after a delay, dead-letter,
 * reply). It never decides policy: attempts, delays and when to dead-letter are decided by
 * `decideSettlement()` in `retry/retry-policy.ts`.
 *
 * Every backend passes the shared contract suite in `testing/backend-contract.ts`.
 */
import type { FailureInfo, FailureReason } from '../errors/failure';

export type { FailureInfo, FailureReason };

/** Header values a backend carries as they are. */
export type HeaderValue = string | number | boolean;

/** Message headers. Keys starting with `x-messaging-` are reserved by the library (`message-headers.ts`). */
export type MessageHeaders = Record<string, HeaderValue>;

/** A message as the core hands it to a backend for publishing. */
export interface OutgoingMessage {
  /** Routing key: the topic to publish to. Exactly one of `topic` and `queue` is set. */
  readonly topic?: string;
  /** A named queue to send to directly (the broker's default exchange on AMQP). */
  readonly queue?: string;
  readonly body: Buffer;
  readonly headers: MessageHeaders;
  /** Unique id, the consumers' idempotency key. */
  readonly messageId: string;
  readonly correlationId?: string;
  /** MIME type of `body`, `application/json` for the default codec. */
  readonly contentType?: string;
  /**
   * How `body` is compressed (`gzip` when the codec compressed it), carried as the broker's own
   * property where it has one (AMQP `content_encoding`; a `content-encoding` field on Redis, a
   * `Content-Encoding` header on NATS), so a plain consumer can decompress on it alone.
   */
  readonly contentEncoding?: string;
  /** Epoch milliseconds at which the producer created the message. */
  readonly timestamp: number;
  /**
   * Deliver no earlier than this many milliseconds from now. The delay is held by the broker where
   * it can (AMQP: a TTL queue), so a crash of the producer does not lose it.
   */
  readonly delayMs?: number;
}

/** Per-call publish options the core passes down. */
export interface BackendPublishOptions {
  /**
   * When true (the default) a message that no queue receives rejects with `UnroutableError`.
   * When false it resolves as published.
   */
  readonly mandatory: boolean;
}

/** One delivery of a message to one subscription. */
export interface Delivery {
  readonly body: Buffer;
  /** The routing key the message was published with (the topic), or the queue name for direct sends. */
  readonly topic: string;
  /** The queue this delivery came from. */
  readonly queue: string;
  readonly headers: Readonly<Record<string, unknown>>;
  readonly messageId: string;
  readonly correlationId?: string;
  readonly contentType?: string;
  readonly contentEncoding?: string;
  /** Where a reply should go when the message is a request. */
  readonly replyTo?: string;
  /** Epoch milliseconds at which the producer created the message, when known. */
  readonly timestamp?: number;
  /**
   * 1 on the first delivery, incremented by each retry the backend carried out: `attemptOf(headers)`
   * of `message-headers.ts` when the backend stamps retries with `retryHeaders()`.
   */
  readonly attempt: number;
  /** True when the broker says this exact delivery may have been seen before (crash, lost connection). */
  readonly redelivered: boolean;
}

/** An encoded reply to a request. */
export interface OutgoingReply {
  readonly body: Buffer;
  readonly headers: MessageHeaders;
  readonly contentType?: string;
  /** As {@link OutgoingMessage.contentEncoding}. */
  readonly contentEncoding?: string;
}

/** A reply as the requester receives it. */
export interface IncomingReply {
  readonly body: Buffer;
  readonly headers: Readonly<Record<string, unknown>>;
  readonly contentType?: string;
  readonly contentEncoding?: string;
}

/**
 * What the backend must do with a settled delivery. Decided by the core, carried out by the backend
 * so that the message is never lost: a retry or dead letter is durably written before the original
 * delivery is acknowledged.
 */
export type Settlement =
  /**
   * Handled: acknowledge it and send `reply` to `delivery.replyTo` when there is one (in either
   * order: `AmqpBackend` acks first, so a crafted reply address costs a reply, not a redelivery loop).
   */
  | { readonly action: 'ack'; readonly reply?: OutgoingReply }
  /**
   * Failed, try again: hold the message for `delayMs` (durably, where the broker can), then deliver
   * it again to the same queue only, with attempt `delivery.attempt + 1`.
   */
  | { readonly action: 'retry'; readonly delayMs: number; readonly failure: FailureInfo }
  /** Failed for good: put it in the service's dead-letter queue with the failure and attempts. */
  | {
      readonly action: 'dead-letter';
      readonly failure: FailureInfo;
      readonly reply?: OutgoingReply;
    }
  /**
   * Not handled: give it back to its queue as it is (same attempt), for this or another instance,
   * at once; the broker delivers it again marked `redelivered`. The core answers so for a delivery
   * whose handler outlived `shutdownTimeoutMs`, or that waited for a handler slot when it passed. A
   * volatile request that came from no queue (Redis pub/sub, core NATS) is dropped: its caller
   * times out.
   */
  | { readonly action: 'requeue' };

/** What a subscription consumes. */
export interface SubscriptionSpec {
  /** The consumer group: each service gets its own copy of a topic's messages. */
  readonly service: string;
  /** The queue to consume. Our own queues are named `<service>.<route>`. */
  readonly queue: string;
  /**
   * Topic patterns to bind `queue` to (AMQP-style: `*` one word, `#` zero or more words). Empty for
   * a named queue consumed as it is.
   */
  readonly topics: readonly string[];
  /**
   * True for `@Consume({ queue })`: the queue belongs to someone else and is consumed as it is
   * (declared passively or with matching arguments; never re-declared with ours).
   */
  readonly external: boolean;
  /**
   * Maximum deliveries in flight for this subscription in this process (AMQP prefetch). A backend
   * that also serves volatile requests for the route from a second source (see
   * {@link BackendRequestOptions.durable}) may hand over up to this many from each: the core never
   * runs more than `concurrency` handlers of the route at once, whatever their source.
   */
  readonly concurrency: number;
  /**
   * A single active consumer: of all the subscriptions of this queue, in every process, at most one
   * receives deliveries at a time; the others stand by, and one of them takes over (first the
   * deliveries the previous one left unsettled, then the rest, in queue order) when it cancels, closes,
   * loses its connection or its process dies — within `EXCLUSIVE_TAKEOVER_MS` at most after a crash.
   * The active one gets deliveries in queue order. For `@Consume(..., { ordered: true })`. @default false
   */
  readonly exclusive?: boolean;
}

/**
 * Called by the backend for each delivery. Resolves with what to do with it; never rejects (the core
 * turns every failure into a settlement).
 */
export type DeliveryHandler = (delivery: Delivery) => Promise<Settlement>;

/** A live subscription. */
export interface BackendSubscription {
  /**
   * Stops taking new deliveries. Deliveries already handed to the handler are still settled when
   * their handler finishes, as long as the backend is open.
   */
  cancel(): Promise<void>;
}

/** Which dead letters to list: `limit` of them (all by default) after skipping `offset` (0). */
export interface DeadLetterPage {
  readonly offset?: number;
  readonly limit?: number;
}

/** What {@link DeadLetterAdmin.replayWhere} did. */
export interface DeadLetterReplay {
  readonly replayed: readonly string[];
  readonly failed: readonly { readonly id: string; readonly error: string }[];
}

/** What {@link DeadLetterAdmin.purgeWhere} did. */
export interface DeadLetterPurge {
  readonly purged: readonly string[];
}

/** A dead letter as listed by {@link DeadLetterAdmin.list}. */
export interface DeadLetter {
  /** Unique id of this dead letter (not the message id: one message can be dead-lettered twice). */
  readonly id: string;
  readonly messageId: string;
  readonly correlationId?: string;
  /** The topic the message was published to (or the queue name for a direct send). */
  readonly topic: string;
  /** The queue it failed on. */
  readonly queue: string;
  /** The original body, byte for byte. */
  readonly body: Buffer;
  readonly contentType?: string;
  readonly contentEncoding?: string;
  /** The original headers (the library's own `x-messaging-*` retry headers removed). */
  readonly headers: Readonly<Record<string, unknown>>;
  readonly reason: FailureReason;
  readonly error: string;
  readonly errorClass: string;
  /** How many times a handler was attempted. */
  readonly attempts: number;
  readonly firstFailedAt: Date;
  readonly lastFailedAt: Date;
  readonly deadLetteredAt: Date;
}

/**
 * The dead-letter queues of a broker, per service (`BrokerBackend.deadLetters`). Every operation
 * rejects with `BackendClosedError` once the backend is closed.
 */
export interface DeadLetterAdmin {
  /**
   * Lists the dead letters of `service`, oldest first: `page.limit` of them from `page.offset` (all
   * by default). Listing neither removes nor reorders, holds at most the page and what it takes to
   * find it in memory, and is safe alongside other listings and replays, in this process or another.
   * Paging by any size visits every letter once (a broker that hands messages back out of order, as
   * RabbitMQ's quorum queues do, sorts by an order stamp written with each letter).
   */
  list(service: string, page?: DeadLetterPage): Promise<DeadLetter[]>;
  /**
   * Calls `visit` with every dead letter of `service`, oldest first, holding a bounded batch at a
   * time (one letter on most brokers; on RabbitMQ up to 2,000 letters or 32 MiB of bodies, sorted);
   * `visit` returns false to see no more. For tools that read a whole queue (`nest-messaging dlq`).
   */
  scan(service: string, visit: (letter: DeadLetter) => boolean | void): Promise<void>;
  /**
   * Sends one dead letter back to the queue it failed on, as a first attempt, and removes it from the
   * dead-letter queue. Resolves false when there is no dead letter with that id.
   */
  replay(service: string, id: string): Promise<boolean>;
  /**
   * Replays every dead letter of `service`; resolves with how many. One that cannot be replayed (its
   * queue is gone) stays, and is reported as an `error` event of the backend.
   */
  replayAll(service: string): Promise<number>;
  /**
   * Replays every dead letter `select` picks, as `replay` replays one. Resolves the ids replayed and,
   * for each picked one that could not be, why (it stays).
   */
  replayWhere(service: string, select: (letter: DeadLetter) => boolean): Promise<DeadLetterReplay>;
  /** Deletes every dead letter of `service`; resolves with how many. */
  purge(service: string): Promise<number>;
  /**
   * Deletes the dead letters of `service` that `select` picks (one error group of the dashboard, say)
   * and leaves the others where they are; resolves with the ids deleted.
   */
  purgeWhere(service: string, select: (letter: DeadLetter) => boolean): Promise<DeadLetterPurge>;
}

/** Connection state, as backends report it. */
export type BackendStatus = 'disconnected' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** Events a backend emits. */
export type BackendEvents = {
  status: (status: BackendStatus) => void;
  /** A problem the backend recovered from or cannot act on (logged by the core). */
  error: (error: Error) => void;
};

/** Options of a request. */
export interface BackendRequestOptions {
  readonly timeoutMs: number;
  /**
   * False (the default of `request()`): a volatile request, as hand-written RPC sends one. Its caller
   * waits at most `timeoutMs` and a reply is worthless after that, so the backend may skip what makes
   * an event durable (a persistent message in the route's durable queue, a publisher confirm, a stream
   * entry): a non-durable queue per route, a core NATS request, a message that lives in memory only.
   * It must still reach one instance of each service whose route matches, with the message's headers
   * (the deadline among them), and reject with `UnroutableError` at once when no instance consumes a
   * matching route now. A request lost with a crashed instance or broker times out. A request to a
   * named queue (`message.queue`) goes into that queue, whoever consumes it; it rejects at once only
   * when the queue does not exist.
   *
   * True: the request travels like an event (durable, confirmed, into the route's own queue), so it
   * waits there for an instance that starts within its timeout.
   */
  readonly durable: boolean;
}

/** Whether one subscription is consuming right now. */
export interface ConsumerState {
  readonly queue: string;
  /** A consumer is registered with the broker and its channel is open. */
  readonly attached: boolean;
  /** Since when it is not (epoch ms); undefined while attached. */
  readonly detachedSince?: number;
}

/**
 * A message broker as the messaging core sees it. Small on purpose: a new backend is one folder
 * implementing this plus one spec that calls the shared contract suite.
 */
export interface BrokerBackend {
  /** Short name used in logs and errors (`memory`, `amqp`). */
  readonly name: string;
  /** Current connection state. */
  readonly status: BackendStatus;
  /**
   * True while the broker blocks this backend's publishing (RabbitMQ's memory or disk alarm):
   * publishes wait, consumers go on. Optional: a backend whose broker never blocks leaves it out.
   */
  readonly blocked?: boolean;
  /**
   * True while OpenTelemetry's instrumentation of the backend's client library is registered and
   * wraps its publish and consume (each then makes a span of its own): the core then leaves the
   * CONSUMER span to it and keeps it from making a second PRODUCER span (`tracing: { spans: 'auto' }`).
   * Read per message only while a tracer provider is registered, so it must be cheap. Optional: a
   * backend whose client has no such instrumentation leaves it out.
   */
  readonly clientInstrumented?: boolean;

  /** Connects (idempotent: a second call waits for the first). */
  connect(): Promise<void>;
  /**
   * Closes: stops all subscriptions, fails pending requests, releases connections. Idempotent. The
   * core drains in-flight handlers before calling it.
   */
  close(): Promise<void>;

  /**
   * Publishes one message. Resolves once the broker durably accepted it (publisher confirm on AMQP),
   * rejects with `UnroutableError` when `options.mandatory` and no queue received it, or with a clear
   * error on nack, timeout or close.
   */
  publish(message: OutgoingMessage, options: BackendPublishOptions): Promise<void>;

  /**
   * Sends a request (a message with a reply address) and resolves with the first reply to it.
   * Rejects with `UnroutableError` when no queue receives it (a volatile request: when no instance
   * consumes it now), `RequestTimeoutError` after `options.timeoutMs`.
   */
  request(message: OutgoingMessage, options: BackendRequestOptions): Promise<IncomingReply>;

  /**
   * Declares what `spec` needs (queue, bindings, retry and dead-letter queues) and starts consuming.
   * `handler` is called at most `spec.concurrency` times concurrently per source; the backend carries
   * out the settlement it resolves with, then acknowledges the delivery. A route on a queue of our own
   * (`!spec.external`) also receives the volatile requests to its topics (see
   * {@link BackendRequestOptions.durable}) for as long as the subscription lasts.
   */
  subscribe(spec: SubscriptionSpec, handler: DeliveryHandler): Promise<BackendSubscription>;

  /**
   * The dead letters of each service: list, scan, replay, purge. A backend builds it with
   * `guardDeadLetters()` (`dead-letter-admin.ts`), which checks the backend is open before each
   * operation and supplies what its broker cannot do in one pass.
   */
  readonly deadLetters: DeadLetterAdmin;

  /** Listens to an event; returns a function that removes the listener. */
  on<E extends keyof BackendEvents>(event: E, listener: BackendEvents[E]): () => void;

  /**
   * The state of each subscription, for health checks. Optional: a backend whose consumers cannot
   * come apart from it (the in-memory one) leaves it out.
   */
  consumerStates?(): readonly ConsumerState[];
}
