import { MessagingConfigError } from '../errors/messaging.errors';
import {
  MESSAGING_METRICS,
  type MessagingCounter,
  type MessagingGauge,
  type MessagingHistogram,
  type MessagingMetrics,
  type MetricLabels,
} from './messaging-metrics';

/** The part of a prom-client `Registry` used here (prom-client's own types need not be installed). */
export interface PromRegistryLike {
  metrics(): Promise<string>;
  readonly contentType: string;
}

/** Options of {@link PrometheusMessagingMetrics}. */
export interface PrometheusMessagingMetricsOptions {
  /** The registry to register in. @default a new `Registry` of its own (see `registry`) */
  registry?: PromRegistryLike;
  /** Prefix of every metric name. @default 'messaging_' */
  prefix?: string;
  /** Buckets of `handler_duration_seconds`. @default 5 ms to 10 s */
  buckets?: number[];
}

interface PromMetric {
  inc?(labels: MetricLabels, value?: number): void;
  observe?(labels: MetricLabels, value: number): void;
  set?(labels: MetricLabels, value: number): void;
}

type PromClient = Record<
  'Counter' | 'Histogram' | 'Gauge',
  new (config: Record<string, unknown>) => PromMetric
> & { Registry: new () => PromRegistryLike };

const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The library's metrics in prom-client (an optional peer: `npm install prom-client`), for a
 * `GET /metrics` endpoint.
 *
 * @example
 * const metrics = new PrometheusMessagingMetrics();
 * MessagingModule.forRoot({ service: 'payments', metrics });
 * // in a controller: res.type(metrics.registry.contentType).send(await metrics.registry.metrics())
 */
export class PrometheusMessagingMetrics implements MessagingMetrics {
  /** Where the metrics are registered: expose `registry.metrics()` on `GET /metrics`. */
  readonly registry: PromRegistryLike;
  private readonly metrics = new Map<string, PromMetric>();

  constructor(options: PrometheusMessagingMetricsOptions = {}) {
    const prom = loadPromClient();
    this.registry = options.registry ?? new prom.Registry();
    const prefix = options.prefix ?? 'messaging_';
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(`${prefix}x`)) {
      throw new MessagingConfigError(
        `PrometheusMessagingMetrics: prefix must be letters, digits, '_' or ':', got ${JSON.stringify(prefix)}`,
      );
    }
    for (const [key, definition] of Object.entries(MESSAGING_METRICS)) {
      const config: Record<string, unknown> = {
        name: `${prefix}${definition.name}`,
        help: definition.help,
        labelNames: [...definition.labels],
        registers: [this.registry],
      };
      if (definition.kind === 'histogram') config.buckets = options.buckets ?? DEFAULT_BUCKETS;
      const kind = { counter: 'Counter', histogram: 'Histogram', gauge: 'Gauge' } as const;
      this.metrics.set(key, new prom[kind[definition.kind]](config));
    }
  }

  increment(metric: MessagingCounter, labels: MetricLabels, by = 1): void {
    this.metrics.get(metric)?.inc?.(labels, by);
  }

  observe(metric: MessagingHistogram, labels: MetricLabels, value: number): void {
    this.metrics.get(metric)?.observe?.(labels, value);
  }

  set(metric: MessagingGauge, labels: MetricLabels, value: number): void {
    this.metrics.get(metric)?.set?.(labels, value);
  }
}

function loadPromClient(): PromClient {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('prom-client') as PromClient;
  } catch {
    throw new MessagingConfigError(
      "PrometheusMessagingMetrics needs the 'prom-client' package: npm install prom-client",
    );
  }
}
