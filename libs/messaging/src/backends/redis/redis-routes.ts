/**
 * What a publishing backend instance remembers of routing, so that a publish costs one `XADD` and a
 * volatile request one script call, without weakening `mandatory` across processes.
 *
 * **Events.** A topic (or queue) is routable when its stream has a consumer group. The library
 * creates a stream only together with a group (`BIND_SCRIPT`, `prepare_topic`) and never destroys a
 * group, so once the routing script (`PUBLISH_SCRIPT`) added a message to a target, later messages go
 * with `XADD … NOMKSTREAM`: Redis adds them only if the stream still exists, atomically, and every
 * group on it at that instant receives them, whoever created it and when. Races, case by case:
 * - a route subscribed by another process: its group is created on the existing stream, so the next
 *   `XADD` reaches it (an `XADD` that Redis runs before the group is created is a publish that came
 *   before the subscription, as on any broker);
 * - a topic first published after a wildcard subscription: not known here, so the script runs and
 *   creates the groups of the matching bindings before adding the message;
 * - a topic nobody consumes: never remembered (only a successful script call is), so every publish
 *   runs the script and rejects with `UnroutableError`;
 * - the stream deleted (Redis restarted empty, keys deleted): `NOMKSTREAM` adds nothing, the entry
 *   is forgotten and the script decides, in the same publish;
 * - groups destroyed by hand with the stream kept (retiring a service, `XGROUP DESTROY`), or a queue
 *   stream deleted, then created again without a group by a send that was not mandatory: the only
 *   changes the stream's existence does not show. A target is therefore trusted for
 *   {@link ROUTE_RECHECK_MS} after the script last confirmed it; then the next publish runs the
 *   script again (one at a time: the others keep the fast path until it answers). So a publish may be
 *   accepted for at most that long, plus a round trip, after its last group was destroyed by hand;
 * - the order of one publisher's messages: every command goes out on one connection, in the order of
 *   the publishes, and the script is sent as `EVAL` (never an `EVALSHA` that Redis, having lost its
 *   scripts, would refuse and that would be sent again behind the fast `XADD`s issued meanwhile).
 *
 * **Volatile requests** go to the routes whose bindings match and that an instance consumes now. The
 * bindings (`<prefix>:bindings`) are read once with their generation (`<prefix>:routing`, a new
 * random token set by `BIND_SCRIPT` when a binding is new or changed, so that none comes back after
 * Redis lost its data) and matched here; the request script checks the
 * generation atomically with the send and refuses when it moved, so a request never misses a route
 * bound before it was sent (see `REQUEST_SCRIPT`).
 */
import { topicMatches } from '../../backend/topic-matcher';

/** How long a target the routing script confirmed is trusted without running it again. */
export const ROUTE_RECHECK_MS = 1_000;

/** Entries kept at most per cache: a publisher of countless distinct topics starts over. */
const MAX_ENTRIES = 10_000;

/** A target (topic or queue) the routing script confirmed, with its stream key. */
export interface KnownRoute {
  readonly stream: string;
  confirmedAt: number;
  /** A publish is running the script to confirm it again. */
  rechecking: boolean;
}

/** The bindings at one routing generation. */
export interface BindingsSnapshot {
  readonly generation: string;
  /** The queues whose patterns match a topic, by topic (filled as topics are asked for). */
  queuesOf(topic: string): readonly string[];
}

export class RedisRoutes {
  private readonly topics = new Map<string, KnownRoute>();
  private readonly queues = new Map<string, KnownRoute>();
  private bindings?: Snapshot;

  /**
   * The topic's stream, when the routing script confirmed it lately (or another publish is confirming
   * it again now); undefined when this publish must run the script.
   */
  knownTopic(topic: string, now: number): KnownRoute | undefined {
    return fresh(this.topics, topic, now);
  }

  /** The queue's stream, when the routing script confirmed it has a group lately; see {@link knownTopic}. */
  knownQueue(queue: string, now: number): KnownRoute | undefined {
    return fresh(this.queues, queue, now);
  }

  /** The routing script added a message to `topic`'s stream `stream`: it is routable now. */
  confirmTopic(topic: string, stream: string, now: number): void {
    confirm(this.topics, topic, stream, now);
  }

  /** The routing script found a group on `queue`'s stream `stream`. */
  confirmQueue(queue: string, stream: string, now: number): void {
    confirm(this.queues, queue, stream, now);
  }

  /** A fast `XADD` found no stream: the script decides again. */
  forgetTopic(topic: string): void {
    this.topics.delete(topic);
  }

  /** See {@link forgetTopic}. */
  forgetQueue(queue: string): void {
    this.queues.delete(queue);
  }

  /** The bindings read last, if any. */
  get snapshot(): BindingsSnapshot | undefined {
    return this.bindings;
  }

  /**
   * Replaces the bindings with those read at `generation` (`BINDINGS_SCRIPT`'s reply after the
   * generation: queue, JSON patterns, ...).
   */
  setBindings(generation: string, flat: readonly string[]): BindingsSnapshot {
    const routes: Array<[string, readonly string[]]> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const patterns = parsePatterns(flat[i + 1]);
      if (patterns.length > 0) routes.push([flat[i], patterns]);
    }
    this.bindings = new Snapshot(generation, routes);
    return this.bindings;
  }
}

class Snapshot implements BindingsSnapshot {
  private readonly matched = new Map<string, readonly string[]>();

  constructor(
    readonly generation: string,
    private readonly routes: ReadonlyArray<[string, readonly string[]]>,
  ) {}

  queuesOf(topic: string): readonly string[] {
    const known = this.matched.get(topic);
    if (known !== undefined) return known;
    const queues: string[] = [];
    for (const [queue, patterns] of this.routes) {
      if (patterns.some((pattern) => topicMatches(pattern, topic))) queues.push(queue);
    }
    if (this.matched.size >= MAX_ENTRIES) this.matched.clear();
    this.matched.set(topic, queues);
    return queues;
  }
}

function fresh(map: Map<string, KnownRoute>, name: string, now: number): KnownRoute | undefined {
  const route = map.get(name);
  if (route === undefined || route.rechecking || now - route.confirmedAt < ROUTE_RECHECK_MS)
    return route;
  // Due for a check: this publish runs the script; the others meanwhile keep the fast path.
  route.rechecking = true;
  return undefined;
}

function confirm(map: Map<string, KnownRoute>, name: string, stream: string, now: number): void {
  const route = map.get(name);
  if (route) {
    route.confirmedAt = now;
    route.rechecking = false;
    return;
  }
  if (map.size >= MAX_ENTRIES) map.clear();
  map.set(name, { stream, confirmedAt: now, rechecking: false });
}

/** A binding's JSON array of patterns; [] when it is not one (written by someone else). */
function parsePatterns(json: string): readonly string[] {
  try {
    const parsed: unknown = JSON.parse(json);
    return Array.isArray(parsed) ? parsed.filter((p): p is string => typeof p === 'string') : [];
  } catch {
    return [];
  }
}
