/**
 * What the unroutable check of a publish knows: the routes (durable consumers) of every process,
 * read from the descriptions of the messages stream's consumers. A route seen is trusted for
 * `routeCacheMs`; a topic or queue no known route takes is looked up again at once, so a consumer
 * another process just created is found. A topic found routed is remembered (for good when a route
 * of this process takes it): the next publish to it is not checked again.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import { topicMatches } from '../../backend/topic-matcher';
import { parseRoute, subjectMatches, type RouteDescription } from './nats-topology';

export class NatsRoutes {
  private known: RouteDescription[] = [];
  private readAt = -Infinity;
  private reading?: Promise<void>;
  /** Routes this process declared: known without asking. */
  private readonly local = new Set<RouteDescription>();
  /** Topics found routed, and when (`Infinity`: by a route of this process). */
  private readonly routed = new Map<string, number>();

  constructor(
    private readonly stream: string,
    private readonly cacheMs: number,
  ) {}

  /** Records a route this process declared. */
  addLocal(route: RouteDescription): void {
    this.local.add(route);
  }

  /** Whether `topic` was found routed lately (no lookup: false means "ask {@link hasTopic}"). */
  knowsTopic(topic: string): boolean {
    const at = this.routed.get(topic);
    return at !== undefined && Date.now() - at < this.cacheMs;
  }

  /** Whether a route of any process takes `topic`. */
  async hasTopic(jsm: JetStreamManager, topic: string): Promise<boolean> {
    const takes = (r: RouteDescription): boolean =>
      r.patterns?.some((p) => topicMatches(p, topic)) ?? false;
    for (const route of this.local) {
      if (takes(route)) return this.remember(topic, Infinity);
    }
    // Trusted from the read that found it, as the routes themselves.
    return (await this.has(jsm, takes)) && this.remember(topic, this.readAt);
  }

  /**
   * How many routes (queues) of all processes take `topic`, as known within `routeCacheMs`: a
   * volatile request goes to one instance of each.
   */
  async countTopic(jsm: JetStreamManager, topic: string): Promise<number> {
    if (Date.now() - this.readAt >= this.cacheMs) await this.refresh(jsm);
    const queues = new Set<string>();
    for (const routes of [this.local, this.known])
      for (const r of routes)
        if (r.patterns?.some((p) => topicMatches(p, topic))) queues.add(r.queue);
    return queues.size;
  }

  /** Whether queue `queue` has a consumer in any process. */
  hasQueue(jsm: JetStreamManager, queue: string): Promise<boolean> {
    return this.has(jsm, (r) => r.patterns === undefined && r.queue === queue);
  }

  private remember(topic: string, at: number): true {
    // Bounded: a producer of ever new topics starts over rather than grow without limit.
    if (this.routed.size >= 10_000) this.routed.clear();
    this.routed.set(topic, at);
    return true;
  }

  private async has(
    jsm: JetStreamManager,
    takes: (route: RouteDescription) => boolean,
  ): Promise<boolean> {
    for (const route of this.local) if (takes(route)) return true;
    if (Date.now() - this.readAt < this.cacheMs && this.known.some(takes)) return true;
    // A read that started before this call may predate the route: then read once more.
    const joined = this.reading !== undefined;
    await this.refresh(jsm);
    if (this.known.some(takes)) return true;
    if (joined) {
      await this.refresh(jsm);
      return this.known.some(takes);
    }
    return false;
  }

  private refresh(jsm: JetStreamManager): Promise<void> {
    this.reading ??= this.read(jsm).finally(() => (this.reading = undefined));
    return this.reading;
  }

  private async read(jsm: JetStreamManager): Promise<void> {
    const started = Date.now();
    const routes: RouteDescription[] = [];
    for await (const info of jsm.consumers.list(this.stream)) {
      const route = parseRoute(info.config.description);
      if (route) routes.push(route);
    }
    this.known = routes;
    this.readAt = started;
  }
}

/** A filter of a route: its absolute subject and the patterns it serves. */
interface Filter {
  readonly filter: string;
  readonly patterns?: readonly string[];
}

/**
 * Which of a route's filters (sorted, as `routeFilters` returns them) handles `topic`: the first
 * whose subject receives it and one of whose patterns matches it. Every filter that receives it gets
 * a copy (a filter may be wider than its patterns, and filters may overlap); only this one handles
 * it. Undefined when no pattern of the route matches (a wide filter's catch).
 */
export function handlingFilter<F extends Filter>(
  filters: readonly F[],
  topicPrefix: string,
  topic: string,
): F | undefined {
  const subject = topicPrefix + topic;
  for (const f of filters) {
    if (!f.patterns || !subjectMatches(f.filter, subject)) continue;
    if (f.patterns.some((pattern) => topicMatches(pattern, topic))) return f;
  }
  return undefined;
}
