import type { MessagingMetrics, MetricLabels } from '@app/messaging';

/** A MessagingMetrics that keeps every value, as a test reads them. */
export class RecordedMetrics implements MessagingMetrics {
  readonly values = new Map<string, number>();
  readonly observations: { metric: string; labels: MetricLabels; value: number }[] = [];
  increment(metric: string, labels: MetricLabels, by = 1): void {
    const key = this.key(metric, labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
  observe(metric: string, labels: MetricLabels, value: number): void {
    this.observations.push({ metric, labels, value });
  }
  set(metric: string, labels: MetricLabels, value: number): void {
    this.values.set(this.key(metric, labels), value);
  }
  get(metric: string, labels: MetricLabels = {}): number | undefined {
    return this.values.get(this.key(metric, labels));
  }
  private key(metric: string, labels: MetricLabels): string {
    return `${metric}${JSON.stringify(Object.entries(labels).sort())}`;
  }
}
