import type {
  MessagingCounter,
  MessagingGauge,
  MetricLabels,
  MessagingMetrics,
} from '../observability/messaging-metrics';

/** Seconds the rate is measured over. */
export const RATE_WINDOW_SECONDS = 60;

/** What the dashboard shows of one handler's deliveries since the app started. */
export interface HandlerCounts {
  /** Deliveries settled, whatever the outcome (the retried and dead-lettered among them). */
  readonly handled: number;
  readonly retried: number;
  readonly deadLettered: number;
  readonly inFlight: number;
  /** `handled` per second over the last {@link RATE_WINDOW_SECONDS} seconds. */
  readonly ratePerSecond: number;
}

const NONE: HandlerCounts = {
  handled: 0,
  retried: 0,
  deadLettered: 0,
  inFlight: 0,
  ratePerSecond: 0,
};

/**
 * The dashboard's in-process counters: a {@link MessagingMetrics} sink that the dashboard module
 * adds to the app's `MessagingInstruments` (beside the app's own `metrics`, if any). It keeps what
 * the dashboard shows of each handler and drops the rest (histograms, publish counters). Exists only
 * in apps that import the dashboard.
 *
 * Per settled delivery: a map lookup, three additions and the clock read once; per handler, two
 * arrays of {@link RATE_WINDOW_SECONDS} numbers for the rate (one per second, reused in a ring).
 */
export class DashboardCounters implements MessagingMetrics {
  private readonly handlers = new Map<string, HandlerTally>();

  constructor(private readonly now: () => number = Date.now) {}

  increment(metric: MessagingCounter, labels: MetricLabels, by = 1): void {
    // `consumed` carries the outcome: `retried` and `deadLettered` are counted from it.
    if (metric !== 'consumed') return;
    const tally = this.tally(labels.handler);
    tally.handled += by;
    if (labels.outcome === 'retry') tally.retried += by;
    else if (labels.outcome === 'dead-letter') tally.deadLettered += by;
    tally.count(Math.floor(this.now() / 1000), by);
  }

  observe(): void {}

  set(metric: MessagingGauge, labels: MetricLabels, value: number): void {
    if (metric === 'inFlight') this.tally(labels.handler).inFlight = value;
  }

  /** What was counted of `handler` (zeros for one that has not settled a delivery yet). */
  of(handler: string): HandlerCounts {
    const tally = this.handlers.get(handler);
    if (!tally) return NONE;
    const { handled, retried, deadLettered, inFlight } = tally;
    const ratePerSecond = tally.recent(Math.floor(this.now() / 1000)) / RATE_WINDOW_SECONDS;
    return { handled, retried, deadLettered, inFlight, ratePerSecond };
  }

  private tally(handler: string | undefined): HandlerTally {
    const name = handler ?? '';
    let tally = this.handlers.get(name);
    if (!tally) this.handlers.set(name, (tally = new HandlerTally()));
    return tally;
  }
}

/** One handler's counts, and its settled deliveries per second in a ring of the last minute. */
class HandlerTally {
  handled = 0;
  retried = 0;
  deadLettered = 0;
  inFlight = 0;
  private readonly perSecond = new Float64Array(RATE_WINDOW_SECONDS);
  private readonly second = new Float64Array(RATE_WINDOW_SECONDS).fill(-1);

  count(second: number, by: number): void {
    const slot = second % RATE_WINDOW_SECONDS;
    if (this.second[slot] !== second) {
      this.second[slot] = second;
      this.perSecond[slot] = 0;
    }
    this.perSecond[slot] += by;
  }

  /** Deliveries counted in the window that ends with `second`. */
  recent(second: number): number {
    let sum = 0;
    for (let slot = 0; slot < RATE_WINDOW_SECONDS; slot++) {
      if (second - this.second[slot] < RATE_WINDOW_SECONDS) sum += this.perSecond[slot];
    }
    return sum;
  }
}
