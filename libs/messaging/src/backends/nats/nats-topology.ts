/**
 * NATS topology of {@link NatsBackend}: names and subject mapping (the idempotent declarations of
 * streams and consumers are in `nats-declarations.ts`).
 *
 * With `prefix = 'messaging'` (the default):
 *
 * | Name                           | Kind                                   | Role                                                          |
 * | ------------------------------ | -------------------------------------- | ------------------------------------------------------------- |
 * | `messaging-messages`           | stream, interest retention, discard new | holds `messaging.t.>` (topics) and `messaging.q.>` (queues) until every consumer that wants a message acked it |
 * | `messaging.t.<topic>`          | subject                                | a publish to `<topic>`                                        |
 * | `messaging.q.<queue>`          | subject                                | a send to one queue: direct sends, retries, replays (`*`, `>`, `%`, spaces percent-encoded) |
 * | `r-<queue>-<hash>`             | durable pull consumer, one per filter of a route | a route's copy of its topics (filter: the pattern mapped to NATS) |
 * | `q-<queue>-<hash>`             | durable pull consumer, one per queue   | what is sent to the route's queue by name                     |
 * | `messaging-delayed`            | stream, work-queue retention           | `messaging.d.>`: delayed publishes and retries until due      |
 * | `delayer`                      | durable pull consumer of it            | shared by every instance: re-publishes a message when due     |
 * | `messaging-dead-letters`       | stream, limits retention               | `messaging.dlq.<service>.dead-letter`: each service's dead letters |
 * | `messaging-leases`             | stream, limits, 1 message per subject, `max_age` the lease's | created with the first exclusive route: whose lease each exclusive queue is (`nats-lease.ts`) |
 * | `messaging.lease.<queue>`      | subject                                | the lease of exclusive queue `<queue>`: its last message names the holder |
 * | `messaging.rq.<topic>`         | core NATS subject, in no stream        | a volatile request to `<topic>` (`request()` without `durable`) |
 * | `messaging.rq.<filter>`, queue group `r-<queue>-<hash>` | core subscription of each instance, one per filter of a route | the route's volatile requests: its instances share them, each route gets one |
 * | `_INBOX.<id>`                  | core subscription, one per durable consumer and instance | the messages and statuses of its pulls (`nats-pull.ts`); a fresh one after a reconnection or a failure, so that no pull of before survives |
 * | `_INBOX.<id>.*`                | core subscriptions, two per instance   | replies to its requests; PubAcks of its publishes             |
 *
 * **Routing.** A route (`spec.queue`, `<service>.<route>`) gets one durable consumer per NATS filter
 * of its topic patterns, shared by the service's instances (they compete) and separate per service
 * (each gets its copy: interest retention keeps a message until each consumer whose filter matches
 * acked it, and drops one nobody wants). NATS 2.9 allows one filter per consumer, hence a consumer per
 * filter. AMQP `*` is NATS `*`; a trailing `#` is the bare prefix plus `prefix.>` (`#` matches zero
 * words, `>` does not); a `#` NATS cannot express (mid-pattern) widens the filter to `prefix.>`, and
 * the consumer acks without handling what `topicMatches()` rejects. When two filters of one route
 * overlap, the first one that matches (filters sorted by their string, whatever the order of the
 * topics) handles the message and the others ack it unhandled.
 * Consumers are created with `deliver_policy: new`: a new route never receives the past. Each
 * consumer's description records its queue and patterns; publishes read them (cached) to reject
 * with `UnroutableError` a topic that no route of any process matches.
 *
 * **Volatile requests.** Not stored: a core NATS message to `messaging.rq.<topic>` with its reply
 * subject, which every route over that topic subscribes (same filters as its consumers) in the queue
 * group named like the filter's consumer, so one instance of each route gets it. With no
 * subscriber the server answers "no responders" at once: `UnroutableError`. A filter wider than
 * its patterns (a `#` inside one) declines what its patterns do not match, and the sender looks for
 * a matching route in the consumers' descriptions before calling it unroutable (so a request that
 * only such a route catches, while the route that matches it has no instance, times out instead of
 * failing at once). A durable request
 * (or one to a named queue) is published to the stream like an event, its reply subject in a header.
 *
 * **Acks.** A delivery is acked after its handler and after the PubAck of its retry copy or dead
 * letter; the ack itself is a plain one (sent with the others of the same turn of the event loop),
 * so an ack lost on the wire or in a crash means a redelivery after `ackWaitMs`. `confirmAcks` waits
 * for the server's confirmation of each instead.
 *
 * **Retries.** A retry is a new copy (headers from `retryHeaders()`: attempt + 1, failure times;
 * the attempt and original topic in the backend's own `x-nats-attempt` and `x-nats-topic`, which
 * alone decide them: a foreign sender's `x-messaging-attempt` does not), published to
 * `messaging.d.q.<queue>` with the due time in `x-nats-due`, and only then is the original acked. The `delayer` consumer naks a copy that is not yet due with the remaining delay
 * (held by the server: a crash loses nothing), then publishes it to `messaging.q.<queue>`, the
 * failing route's queue consumer only. A `delayMs` publish goes the same way to `messaging.t.<topic>`
 * (routed when due; the unroutable check is made at publish time). `nak`-with-delay on the route
 * itself is not used: it cannot carry the attempt, would count as a redelivery, and waiting retries
 * would fill the route's `max_ack_pending`.
 *
 * **Redelivery.** A delivery is kept alive (`working()`) while it waits for a slot or its handler
 * runs; a crashed instance stops doing so and its deliveries are redelivered after `ackWaitMs` to
 * another instance, flagged `redelivered`. A server killed before it wrote its consumer's latest
 * state delivers again, as first deliveries, what it had delivered (and maybe seen acked) since: an
 * instance that received it before marks it `redelivered` from its sequences (`nats-rollback.ts`).
 * Past `deliveryLimit` deliveries a message is dead-lettered (reason `delivery-limit`);
 * `max_deliver` is unlimited, so a delivery whose dead letter could not be written comes again
 * rather than staying in the stream for good.
 *
 * **Duplicates.** Each copy (retry, dead letter, release of a delayed message, replay) carries a
 * JetStream message id made from the failing route and the stored message's sequence (or the delayed
 * message's sequence, or the dead letter's id), so writing it again after a crash stores it once
 * within the stream's duplicate window (see `duplicateWindowMs`), while two routes failing the same
 * published message each store their copy. Every publish is sent again under its own message id
 * when its PubAck does not come (one written as the connection dropped is lost on the wire).
 *
 * **Dead letters.** A dead letter (headers from `deadLetterHeaders()`) is published to
 * `messaging.dlq.<service>.dead-letter` before the original is acked. Listing reads them oldest first
 * through a short-lived ephemeral consumer (one page in memory); replay publishes to
 * `messaging.q.<queue>` (message id = dead-letter id, so a concurrent second replay is a duplicate)
 * and deletes the dead letter by sequence; purge purges the subject.
 */
import { createHash } from 'node:crypto';
import { deadLetterQueueName } from '../../backend/queue-names';
import { MessagingConfigError } from '../../errors/messaging.errors';

/** Name of the shared consumer of the delayed stream. */
export const DELAYER_CONSUMER = 'delayer';

/** Names of one prefix's streams and subjects. */
export interface NatsNames {
  readonly messages: string;
  readonly delayed: string;
  readonly deadLetters: string;
  /** The stream of exclusive queues' leases (`nats-lease.ts`), and the subject of one. */
  readonly leases: string;
  readonly leaseSubject: (queue: string) => string;
  readonly topicSubject: (topic: string) => string;
  readonly queueSubject: (queue: string) => string;
  readonly delayedSubject: (subject: string) => string;
  readonly deadLetterSubject: (service: string) => string;
  /** Core NATS subject of a volatile request to `topic` (or of a route's filter): no stream has it. */
  readonly requestSubject: (topic: string) => string;
  /** `messaging.t.` and `messaging.q.`: what a subject of the messages stream starts with. */
  readonly topicPrefix: string;
  readonly queuePrefix: string;
  readonly delayedPrefix: string;
  readonly requestPrefix: string;
}

export function natsNames(prefix: string): NatsNames {
  return {
    messages: `${prefix}-messages`,
    delayed: `${prefix}-delayed`,
    deadLetters: `${prefix}-dead-letters`,
    leases: `${prefix}-leases`,
    leaseSubject: (queue) => `${prefix}.lease.${subjectOfName(queue)}`,
    topicSubject: (topic) => `${prefix}.t.${topic}`,
    queueSubject: (queue) => `${prefix}.q.${subjectOfName(queue)}`,
    delayedSubject: (subject) => `${prefix}.d.${subject.slice(prefix.length + 1)}`,
    deadLetterSubject: (service) => `${prefix}.dlq.${subjectOfName(deadLetterQueueName(service))}`,
    requestSubject: (topic) => `${prefix}.rq.${topic}`,
    topicPrefix: `${prefix}.t.`,
    queuePrefix: `${prefix}.q.`,
    delayedPrefix: `${prefix}.d.`,
    requestPrefix: `${prefix}.rq.`,
  };
}

/**
 * A queue or service name as subject words: queue names carry topic patterns (`svc.order.*`), and
 * `*`, `>`, `%` and whitespace are percent-encoded so that each name is one literal subject.
 */
export function subjectOfName(name: string): string {
  return name.replace(
    /[*>%\s]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
  );
}

/** The name a queue subject (relative to the queue prefix) stands for. */
export function nameOfSubject(subject: string): string {
  return subject.replace(/%([0-9A-F]{2})/g, (_, hex: string) =>
    String.fromCharCode(parseInt(hex, 16)),
  );
}

/** A word of a subject: no whitespace, no NATS wildcard characters. */
const PLAIN_WORD = /^[^\s*>]+$/;

/**
 * Throws a `MessagingConfigError` when `name` (a topic, queue or service) cannot be a NATS subject:
 * empty words, whitespace, `*` or `>` inside it.
 */
export function assertSubjectName(name: string, what: string): void {
  if (
    typeof name !== 'string' ||
    name.length === 0 ||
    !name.split('.').every((w) => PLAIN_WORD.test(w))
  ) {
    throw new MessagingConfigError(
      `NatsBackend: ${what} ${JSON.stringify(name)} cannot be a NATS subject: use dot-separated words ` +
        'without spaces, `*` or `>`',
    );
  }
}

/**
 * The NATS filters (relative to the topic prefix) that together receive every topic `pattern`
 * matches, maybe more (a mid-pattern `#`): the consumer checks `topicMatches()` on each message.
 */
export function natsFilters(pattern: string): string[] {
  const words = pattern.split('.');
  for (const word of words) {
    if (word !== '*' && word !== '#' && !PLAIN_WORD.test(word)) {
      throw new MessagingConfigError(
        `NatsBackend: topic pattern ${JSON.stringify(pattern)} has the word ${JSON.stringify(word)}: ` +
          'NATS subjects allow `*` and `#` only as whole words, and no spaces or `>`',
      );
    }
  }
  const first = words.indexOf('#');
  if (first < 0) return [words.join('.')];
  const head = words.slice(0, first);
  const wide = head.length > 0 ? `${head.join('.')}.>` : '>';
  // `#` matches zero words: when only `#`s follow the head, the head alone matches too.
  const onlyHashes = words.slice(first).every((w) => w === '#');
  return onlyHashes && head.length > 0 ? [head.join('.'), wide] : [wide];
}

/** Whether NATS subject `subject` matches `filter` (`*` one token, `>` one or more at the end). */
export function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '>') return s.length > i;
    if (i >= s.length || (f[i] !== '*' && f[i] !== s[i])) return false;
  }
  return f.length === s.length;
}

/** One durable consumer of a route: its filter (absolute) and the patterns it serves. */
export interface RouteFilter {
  readonly name: string;
  readonly filter: string;
  readonly patterns: readonly string[];
}

/**
 * The consumers of a route over topics, sorted by filter (the first match handles a message): the
 * order does not depend on the order of `topics`.
 */
export function routeFilters(
  names: NatsNames,
  queue: string,
  topics: readonly string[],
): RouteFilter[] {
  const byFilter = new Map<string, string[]>();
  for (const pattern of topics) {
    for (const filter of natsFilters(pattern)) {
      const list = byFilter.get(filter) ?? [];
      if (!list.includes(pattern)) list.push(pattern);
      byFilter.set(filter, list);
    }
  }
  // Sorted by filter, not by `topics` order: two versions of a service listing the same topics in
  // another order (a rolling deploy) agree on which overlapping filter handles a message.
  return [...byFilter]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([filter, patterns]) => ({
      name: consumerName('r', queue, filter),
      filter: names.topicSubject(filter),
      patterns,
    }));
}

/** Name of the consumer of a queue's own subject. */
export function queueConsumerName(queue: string): string {
  return consumerName('q', queue, '');
}

/** A valid, stable consumer name: readable part of the queue plus a hash of what it consumes. */
function consumerName(kind: 'r' | 'q', queue: string, filter: string): string {
  const slug = queue.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 48);
  const hash = createHash('sha256').update(`${queue}\n${filter}`).digest('hex').slice(0, 10);
  return `${kind}-${slug}-${hash}`;
}

/** What a consumer's description says about it: read back by the unroutable check. */
export interface RouteDescription {
  readonly queue: string;
  /** Topic patterns; absent on a queue consumer. */
  readonly patterns?: readonly string[];
}

const DESCRIPTION_MARK = 'nest-messaging route ';

export function describeRoute(route: RouteDescription): string {
  return DESCRIPTION_MARK + JSON.stringify(route);
}

export function parseRoute(description: string | undefined): RouteDescription | undefined {
  if (!description?.startsWith(DESCRIPTION_MARK)) return undefined;
  try {
    const parsed = JSON.parse(description.slice(DESCRIPTION_MARK.length)) as RouteDescription;
    return typeof parsed.queue === 'string' ? parsed : undefined;
  } catch {
    return undefined;
  }
}
