/**
 * What the library measures, and the small interface through which it reports it. Give
 * `MessagingModule.forRoot({ metrics })` a {@link MessagingMetrics}: `PrometheusMessagingMetrics`
 * (prom-client), or your own for another system. Without one nothing is measured.
 *
 * | metric                          | kind      | labels                    | counts                                       |
 * | ------------------------------- | --------- | ------------------------- | -------------------------------------------- |
 * | `published_total`               | counter   | `topic`                   | publishes handed to the broker or the outbox |
 * | `publish_confirmed_total`       | counter   | `topic`                   | publishes the broker confirmed               |
 * | `publish_rejected_total`        | counter   | `topic`, `error`          | publishes that failed (error class)          |
 * | `consumed_total`                | counter   | `handler`, `topic`, `outcome` | deliveries settled: `ack`, `retry`, `dead-letter`, `dropped` (failed, no dead-letter queue), `error-reply` (a failed request answered with its error), `duplicate`, `expired` |
 * | `handler_duration_seconds`      | histogram | `handler`, `outcome`      | time from delivery to settlement decision    |
 * | `retried_total`                 | counter   | `handler`                 | deliveries sent to a retry after a failure   |
 * | `dead_lettered_total`           | counter   | `handler`, `reason`       | deliveries parked in the dead-letter queue   |
 * | `redelivered_total`             | counter   | `handler`                 | deliveries the broker marked as seen before  |
 * | `in_flight`                     | gauge     | `handler`                 | handlers running now                         |
 * | `reconnects_total`              | counter   | `backend`, `connection`   | connections re-established after a loss      |
 * | `outbox_backlog`                | gauge     |                           | messages waiting in the outbox               |
 * | `circuit_open`                  | gauge     | `handler`                 | 1 while a handler's circuit breaker is open or half-open |
 * | `circuit_opened_total`          | counter   | `handler`                 | times a handler's circuit breaker opened     |
 */

/** Label values of one observation. */
export type MetricLabels = Readonly<Record<string, string>>;

/** Where the library's measurements go: three calls, one per kind of metric. */
export interface MessagingMetrics {
  /** Adds `by` (1) to a counter. */
  increment(metric: MessagingCounter, labels: MetricLabels, by?: number): void;
  /** Records one value of a histogram (seconds). */
  observe(metric: MessagingHistogram, labels: MetricLabels, value: number): void;
  /** Sets a gauge. */
  set(metric: MessagingGauge, labels: MetricLabels, value: number): void;
}

/** One metric of the table above. */
export interface MetricDefinition {
  readonly name: string;
  readonly kind: 'counter' | 'histogram' | 'gauge';
  readonly help: string;
  readonly labels: readonly string[];
}

export const MESSAGING_METRICS = {
  published: {
    name: 'published_total',
    kind: 'counter',
    help: 'Messages handed to the broker, or written to the outbox',
    labels: ['topic'],
  },
  confirmed: {
    name: 'publish_confirmed_total',
    kind: 'counter',
    help: 'Publishes the broker confirmed',
    labels: ['topic'],
  },
  rejected: {
    name: 'publish_rejected_total',
    kind: 'counter',
    help: 'Publishes that failed, by error class',
    labels: ['topic', 'error'],
  },
  consumed: {
    name: 'consumed_total',
    kind: 'counter',
    help: 'Deliveries settled, by outcome',
    labels: ['handler', 'topic', 'outcome'],
  },
  handlerDuration: {
    name: 'handler_duration_seconds',
    kind: 'histogram',
    help: 'Time from a delivery to its settlement decision',
    labels: ['handler', 'outcome'],
  },
  retried: {
    name: 'retried_total',
    kind: 'counter',
    help: 'Deliveries sent to a retry after a failure',
    labels: ['handler'],
  },
  deadLettered: {
    name: 'dead_lettered_total',
    kind: 'counter',
    help: 'Deliveries parked in the dead-letter queue, by reason',
    labels: ['handler', 'reason'],
  },
  redelivered: {
    name: 'redelivered_total',
    kind: 'counter',
    help: 'Deliveries the broker marked as possibly seen before',
    labels: ['handler'],
  },
  inFlight: {
    name: 'in_flight',
    kind: 'gauge',
    help: 'Handlers running now',
    labels: ['handler'],
  },
  reconnects: {
    name: 'reconnects_total',
    kind: 'counter',
    help: 'Broker connections re-established after a loss',
    labels: ['backend', 'connection'],
  },
  outboxBacklog: {
    name: 'outbox_backlog',
    kind: 'gauge',
    help: 'Messages waiting in the outbox',
    labels: [],
  },
  circuitOpen: {
    name: 'circuit_open',
    kind: 'gauge',
    help: "1 while a handler's circuit breaker is open or half-open, else 0",
    labels: ['handler'],
  },
  circuitOpened: {
    name: 'circuit_opened_total',
    kind: 'counter',
    help: "Times a handler's circuit breaker opened",
    labels: ['handler'],
  },
} as const satisfies Record<string, MetricDefinition>;

type Catalog = typeof MESSAGING_METRICS;
type Of<K extends MetricDefinition['kind']> = {
  [N in keyof Catalog]: Catalog[N]['kind'] extends K ? N : never;
}[keyof Catalog];

export type MessagingCounter = Of<'counter'>;
export type MessagingHistogram = Of<'histogram'>;
export type MessagingGauge = Of<'gauge'>;

/** How a delivery ended, as `consumed_total` counts it. */
export type ConsumeOutcome =
  'ack' | 'retry' | 'dead-letter' | 'dropped' | 'error-reply' | 'duplicate' | 'expired' | 'requeue';

/**
 * The library's measuring points, in its own words; a no-op without a {@link MessagingMetrics}.
 * One per app (`MessagingModule` provides it). A sink that throws never changes what happens to a
 * message: its error is reported once to `onSinkError` and the measurement is dropped.
 */
export class MessagingInstruments {
  private readonly inFlightByHandler = new Map<string, number>();
  /** Every sink, each guarded: the app's `metrics` option, then those {@link addSink} added. */
  private readonly sinks: MessagingMetrics[] = [];
  private sink: MessagingMetrics | undefined;
  private sinkFailed = false;

  constructor(
    sink: MessagingMetrics | undefined,
    private readonly onSinkError: (error: unknown) => void = () => undefined,
  ) {
    if (sink) this.addSink(sink);
  }

  /**
   * Sends every measurement to `sink` too, beside the app's own (the dashboard's in-process
   * counters). Until a first sink is added nothing is measured, so an app that adds none pays
   * nothing. Returns its removal.
   */
  addSink(sink: MessagingMetrics): () => void {
    const added = guarded(sink, (error) => this.failed(error));
    this.sinks.push(added);
    this.sink = fanOut(this.sinks);
    return () => {
      const at = this.sinks.indexOf(added);
      if (at >= 0) this.sinks.splice(at, 1);
      this.sink = fanOut(this.sinks);
    };
  }

  private failed(error: unknown): void {
    if (this.sinkFailed) return;
    this.sinkFailed = true;
    this.onSinkError(error);
  }

  get enabled(): boolean {
    return this.sink !== undefined;
  }

  published(topic: string): void {
    this.sink?.increment('published', { topic });
  }

  confirmed(topic: string): void {
    this.sink?.increment('confirmed', { topic });
  }

  rejected(topic: string, error: unknown): void {
    const name = error instanceof Error ? error.constructor.name : 'Error';
    this.sink?.increment('rejected', { topic, error: name });
  }

  /** A handler started (+1) or ended (-1). */
  running(handler: string, delta: 1 | -1): void {
    if (!this.sink) return;
    const now = (this.inFlightByHandler.get(handler) ?? 0) + delta;
    this.inFlightByHandler.set(handler, now);
    this.sink.set('inFlight', { handler }, now);
  }

  /** A delivery was settled as `outcome`, `seconds` after it arrived. */
  settled(
    delivery: { readonly handler: string; readonly topic: string; readonly redelivered: boolean },
    outcome: ConsumeOutcome,
    seconds: number,
    reason?: string,
  ): void {
    const sink = this.sink;
    if (!sink) return;
    const { handler, topic } = delivery;
    sink.increment('consumed', { handler, topic, outcome });
    sink.observe('handlerDuration', { handler, outcome }, seconds);
    if (delivery.redelivered) sink.increment('redelivered', { handler });
    if (outcome === 'retry') sink.increment('retried', { handler });
    if (outcome === 'dead-letter') {
      sink.increment('deadLettered', { handler, reason: reason ?? 'unknown' });
    }
  }

  reconnected(backend: string, connection: string): void {
    this.sink?.increment('reconnects', { backend, connection });
  }

  /** A handler's circuit breaker opened (`true`) or closed again (`false`). */
  circuit(handler: string, open: boolean): void {
    this.sink?.set('circuitOpen', { handler }, open ? 1 : 0);
    if (open) this.sink?.increment('circuitOpened', { handler });
  }

  outboxBacklog(pending: number): void {
    this.sink?.set('outboxBacklog', {}, pending);
  }
}

/** One sink that calls each of `sinks` (undefined for none: nothing measured). */
function fanOut(sinks: readonly MessagingMetrics[]): MessagingMetrics | undefined {
  if (sinks.length <= 1) return sinks[0];
  const all = [...sinks];
  return {
    increment: (metric, labels, by) => all.forEach((sink) => sink.increment(metric, labels, by)),
    observe: (metric, labels, value) => all.forEach((sink) => sink.observe(metric, labels, value)),
    set: (metric, labels, value) => all.forEach((sink) => sink.set(metric, labels, value)),
  };
}

/** `sink` with every call caught: measuring must never fail a publish or a delivery. */
function guarded(sink: MessagingMetrics, onError: (error: unknown) => void): MessagingMetrics {
  return {
    increment(metric, labels, by) {
      try {
        sink.increment(metric, labels, by);
      } catch (error) {
        onError(error);
      }
    },
    observe(metric, labels, value) {
      try {
        sink.observe(metric, labels, value);
      } catch (error) {
        onError(error);
      }
    },
    set(metric, labels, value) {
      try {
        sink.set(metric, labels, value);
      } catch (error) {
        onError(error);
      }
    },
  };
}
