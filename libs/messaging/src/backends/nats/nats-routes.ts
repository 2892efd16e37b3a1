/**
 * What the unroutable check of a publish knows: the routes (durable consumers) of every process,
 * read from the descriptions of the messages stream's consumers. A route seen is trusted for
 * `routeCacheMs`; a topic or queue no known route takes is looked up again at once, so a consumer
 * another process just created is found. A topic found routed is remembered (for good when a route
 * of this process takes it): the next publish to it is not checked again.
 *
 * A lookup is shared by the checks made while it runs, but it is bounded (`lookupTimeoutMs`) and
 * given up at a reconnection: one sent as the connection dropped, or to a restarted server whose
 * JetStream was not back yet, is never answered, and every publish that joined it would wait for
 * it and fail with it, even long after the reconnection. Its waiters get a {@link RouteLookupError}
 * at once then, and look up again.
 *
 * On a cluster a listing leaves out the consumers whose leader is being elected (nats-server 2.9
 * names them in `missing`, which nats.js drops): a route not found is therefore confirmed against
 * the stream's own count of its consumers, and a listing that saw fewer is no answer (a
 * {@link RouteLookupError}: the publish asks again), never "unroutable".
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import { topicMatches } from '../../backend/topic-matcher';
import { isNotFound } from './nats-declarations';
import { parseRoute, subjectMatches, type RouteDescription } from './nats-topology';

/** A route lookup that got no answer in time, or was given up at a reconnection: ask again. */
export class RouteLookupError extends Error {}

/** A lookup in flight, which its waiters share until it ends or is given up. */
interface Lookup {
  readonly done: Promise<void>;
  giveUp(reason: string): void;
}

export class NatsRoutes {
  private known: RouteDescription[] = [];
  /** Consumers the last read listed, routes or not. */
  private listed = 0;
  private readAt = -Infinity;
  private reading?: Lookup;
  /** Counts reconnections: a lookup sent before the latest one is given up. */
  private generation = 0;
  /** Routes this process declared: known without asking. */
  private readonly local = new Set<RouteDescription>();
  /** Topics found routed, and when (`Infinity`: by a route of this process). */
  private readonly routed = new Map<string, number>();

  constructor(
    private readonly stream: string,
    private readonly cacheMs: number,
    private readonly lookupTimeoutMs: number,
  ) {}

  /** The connection was lost and made again: a lookup in flight will never be answered. */
  reconnected(): void {
    this.generation++;
    this.reading?.giveUp('the connection was lost while it waited for an answer');
  }

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
      if (this.known.some(takes)) return true;
    }
    await this.confirmComplete(jsm);
    return false;
  }

  /**
   * Throws a {@link RouteLookupError} unless the last read listed every consumer the stream has
   * (its `consumer_count`): on a cluster, those whose leader is being elected are left out of a
   * listing. Bounded like a read: a stream without a leader answers nothing.
   */
  private async confirmComplete(jsm: JetStreamManager): Promise<void> {
    const listed = this.listed;
    let timer: NodeJS.Timeout | undefined;
    const count = await Promise.race([
      jsm.streams.info(this.stream).then(
        (info) => info.state.consumer_count,
        // No stream: no consumer either.
        (error: unknown) => {
          if (isNotFound(error)) return 0;
          throw error;
        },
      ),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new RouteLookupError(
                `route lookup on '${this.stream}': its consumer count not answered within ${this.lookupTimeoutMs} ms`,
              ),
            ),
          this.lookupTimeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    if (count > listed) {
      throw new RouteLookupError(
        `route lookup on '${this.stream}': ${listed} of its ${count} consumers answered (a cluster electing their leaders)`,
      );
    }
  }

  private refresh(jsm: JetStreamManager): Promise<void> {
    if (this.reading) return this.reading.done;
    const generation = this.generation;
    let giveUp!: (reason: string) => void;
    const given = new Promise<never>((_, reject) => {
      giveUp = (reason) =>
        reject(new RouteLookupError(`route lookup on '${this.stream}': ${reason}`));
    });
    const timer = setTimeout(
      () => giveUp(`no answer within ${this.lookupTimeoutMs} ms`),
      this.lookupTimeoutMs,
    );
    const lookup: Lookup = {
      done: Promise.race([this.read(jsm, generation), given]).finally(() => {
        clearTimeout(timer);
        if (this.reading === lookup) this.reading = undefined;
      }),
      giveUp: (reason) => {
        if (this.reading === lookup) this.reading = undefined;
        giveUp(reason);
      },
    };
    // The read itself may still end (or fail) after it was given up: nobody waits for it then.
    given.catch(() => undefined);
    this.reading = lookup;
    return lookup.done;
  }

  private async read(jsm: JetStreamManager, generation: number): Promise<void> {
    const started = Date.now();
    const routes: RouteDescription[] = [];
    let listed = 0;
    try {
      for await (const info of jsm.consumers.list(this.stream)) {
        listed++;
        const route = parseRoute(info.config.description);
        if (route) routes.push(route);
      }
    } catch (error) {
      // No stream (deleted, or a memory stream lost in a restart): no route either.
      if (!isNotFound(error)) throw error;
    }
    // A read given up at a reconnection may still end: what it read is older than what follows.
    if (generation !== this.generation) return;
    this.known = routes;
    this.listed = listed;
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
