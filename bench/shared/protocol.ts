/**
 * What the orchestrator (`bench/run.ts`) and a contender's child process say to each other, and the
 * small interface every contender implements. Plain Node only: this file is also compiled into the
 * golevelup package (`bench/golevelup`), which must never load the root's NestJS 12.
 */

export type QueueType = 'quorum' | 'classic';

/** The broker a contender runs on (`memory` contenders have none). */
export type Broker = 'rabbitmq' | 'redis' | 'nats';

/**
 * Contender families; each runs in its own child process. `raw` is the broker's own client used
 * directly (amqplib, ioredis, nats.js), `ours` the library on that broker's backend.
 */
export type ContenderKind = 'raw' | 'ours' | 'nest-rmq' | 'golevelup' | 'memory';

export type WorkloadKind = 'fire-and-forget' | 'request-reply' | 'retry' | 'backlog';

/** One measured workload, as the orchestrator hands it to a child. */
/** `@Consume(topic, { batch: { size, maxWaitMs } })` of a batch workload. */
export interface BatchSpec {
  readonly size: number;
  readonly maxWaitMs: number;
}

export interface WorkloadSpec {
  /** Short name, also used in queue names: `ff-256B-x1`, `rr-seq`, ... */
  readonly name: string;
  readonly kind: WorkloadKind;
  /** Messages (or requests) measured. */
  readonly messages: number;
  /** Size of each JSON body in bytes (exact, as `JSON.stringify` of the payload). */
  readonly bodyBytes: number;
  /** Consumer instances (connections/apps) competing on one queue. */
  readonly consumers: number;
  /** Publishes (or requests) in flight at most. */
  readonly inFlight: number;
  /** Request/reply: calls made first and not measured. */
  readonly warmup?: number;
  /** Retry: every `failEvery`-th message fails on its first delivery (10 = 10%). */
  readonly failEvery?: number;
  /**
   * Fire-and-forget: the library consumes in batches (`@Consume(topic, { batch })`), its handler
   * called once per batch with an array; no other contender runs it.
   */
  readonly batch?: BatchSpec;
  /**
   * Fire-and-forget: the library's handler is ordered (`@Consume(topic, { ordered: true })`) and
   * message `id` carries the ordering key `k<id % orderedKeys>`; no other contender runs it.
   */
  readonly orderedKeys?: number;
  /** Backlog: the drain handler awaits between 0 and this many ms. */
  readonly slowHandlerMs?: number;
  /** Backlog: `fill` only publishes to the queue and keeps it; `drain` consumes it and deletes it. */
  readonly phase?: 'fill' | 'drain';
}

/** Everything a child needs; passed as JSON in `argv[2]`. */
export interface ChildTask {
  readonly contender: ContenderKind;
  readonly queueType?: QueueType;
  /** The broker of `url` (undefined: RabbitMQ, or none for `memory`). */
  readonly broker?: Broker;
  /** The broker's URL: AMQP, `redis://` or `nats://`. */
  readonly url: string;
  /**
   * Every queue and exchange (Redis key, JetStream stream) the child declares starts with this
   * (unique to the run and task).
   */
  readonly prefix: string;
  /** The child reports a failure and exits once this is exceeded. */
  readonly timeLimitMs: number;
  /** Fail a workload when no message arrived for this long. */
  readonly stallMs: number;
  readonly workloads: readonly WorkloadSpec[];
  /**
   * How its requests travel, for the contenders that answer requests only: `volatile` (the raw
   * reference RPC, the library's default) or `durable` (persistent, confirmed, into a durable queue).
   */
  readonly requests?: Requests;
  /**
   * `npm run bench:profile`: write a profile of the measured window of the (single) workload to
   * this path, in Chrome DevTools' formats: CPU for `.cpuprofile`, allocations for `.heapprofile`.
   */
  readonly profile?: string;
  /**
   * Quick mode's gate runs: measure each workload this many times on one rig, one run each time the
   * orchestrator writes a line to the child's stdin (see shared/child.ts); undefined: once, at once.
   */
  readonly slices?: number;
  /** The library's child runs with bench/experiments/bare-handlers.ts preloaded (an experiment). */
  readonly bareHandlers?: boolean;
}

/** How a request/reply contender sends its requests (see {@link ChildTask.requests}). */
export type Requests = 'volatile' | 'durable';

/** What every message was: published, confirmed, received. */
export interface Counts {
  expected: number;
  published: number;
  confirmed: number;
  /** Distinct ids handled successfully. */
  receivedUnique: number;
  /** Successful handler calls for an id already counted (allowed by at-least-once, reported). */
  duplicates: number;
  /** Ids outside the published range, or replies that did not match their request. */
  unknown: number;
  /** Deliveries failed on purpose (retry workload). */
  injectedFailures: number;
}

/** One workload's outcome; printed by the child as `BENCH_RESULT <json>`. */
export interface WorkloadResult {
  readonly workload: string;
  readonly ok: boolean;
  readonly error?: string;
  /** msgs/s (or calls/s) over the measured window. */
  readonly rate?: number;
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  /** `process.resourceUsage().maxRSS` when the workload ended, in MB. */
  readonly rssMb: number;
  /**
   * CPU time of the whole child (user + system, `process.cpuUsage()`) over the measured window,
   * per message (per call for request/reply), in µs: the client side's cost, whatever the wall clock.
   */
  readonly cpuUs?: number;
  /** Garbage collection pauses (`PerformanceObserver` 'gc' entries) in the window, per message, in µs. */
  readonly gcUs?: number;
  readonly elapsedMs?: number;
  readonly counts: Counts;
}

export const RESULT_PREFIX = 'BENCH_RESULT ';
/** The child's first line: its contender's settings, as a JSON array of strings. */
export const SETTINGS_PREFIX = 'BENCH_SETTINGS ';

/** The payload every contender carries: an id and padding to the body size. */
export interface BenchMessage {
  id: number;
  pad: string;
}

/** Handles one message; a throw (or rejection) is a failed delivery. */
export type MessageHandler = (message: BenchMessage) => void | Promise<void>;

export interface PubSubOptions {
  /** Queue/exchange/service names start with this. */
  readonly name: string;
  /** 0 declares the queue and consumes nothing (backlog fill). */
  readonly consumers: number;
  /** Publishes the driver keeps in flight (a contender with a window of its own matches it). */
  readonly inFlight: number;
  readonly handler: MessageHandler;
  /** Whether a failed delivery must come back (the contender's retry feature, or the reference's). */
  readonly retry: boolean;
  /** Backlog fill: keep the queue at close. */
  readonly keepQueue?: boolean;
  /** Consume in batches (the library only; see `WorkloadSpec.batch`). */
  readonly batch?: BatchSpec;
  /** Consume ordered, with this many keys (the library only; see `WorkloadSpec.orderedKeys`). */
  readonly orderedKeys?: number;
}

/** A producer and `consumers` consumer instances on one queue, all in this process. */
export interface PubSubRig {
  /** Resolves once the broker confirmed the message. */
  publish(message: BenchMessage): Promise<void>;
  close(): Promise<void>;
}

export interface RequestRig {
  request(message: BenchMessage, timeoutMs: number): Promise<{ id: number }>;
  close(): Promise<void>;
}

/** One contender: how it publishes, consumes and answers requests. */
export interface Contender {
  /** Settings, one per line, printed in the report. */
  readonly settings: readonly string[];
  /** Whether it has a retry feature (or, for raw amqplib, the reference's republish). */
  readonly supportsRetry: boolean;
  pubSub(options: PubSubOptions): Promise<PubSubRig>;
  requestReply(options: {
    name: string;
    handler: (message: BenchMessage) => { id: number };
  }): Promise<RequestRig>;
}

export type ContenderFactory = (task: ChildTask) => Contender;
