/**
 * RabbitMQ topology of {@link AmqpBackend}: names and idempotent declarations.
 *
 * With `exchange = 'messaging'` (the default):
 *
 * | Name                          | Kind                     | Role                                                         |
 * | ----------------------------- | ------------------------ | ------------------------------------------------------------ |
 * | `messaging`                   | topic exchange, durable  | every topic is published here                                |
 * | `<service>.<route>`           | queue (quorum), durable  | one per subscription (`spec.queue`), bound to its topics     |
 * | `messaging.retry.<ms>`        | fanout exchange, durable | entry of one retry tier                                      |
 * | `messaging.retry.<ms>`        | queue, TTL `<ms>`        | holds retries; on expiry dead-letters to the default exchange |
 * | `messaging.delay.<ms>`        | fanout exchange, durable | entry of one delayed-publish tier                            |
 * | `messaging.delay.<ms>`        | queue, TTL `<ms>`        | holds delayed publishes; on expiry dead-letters to `messaging`|
 * | `<service>.dead-letter`       | queue (quorum), durable  | the service's dead letters                                   |
 * | `<service>.dead-letter.lock`  | queue, exclusive         | held while one instance lists or replays them (a lock)       |
 * | `messaging.requests`          | topic exchange, durable  | volatile requests (`request()` without `durable`)            |
 * | `messaging.requests.<queue>`  | queue (classic), auto-delete | a route's volatile requests; lives while its consumers do |
 * | `messaging.requests.<queue>.g<n>` | the same             | the next generation, while the node of the previous is down |
 *
 * A retry copy is published to `messaging.retry.<tier>` with the failing queue's name as routing
 * key. The fanout ignores the key; when the TTL expires the broker dead-letters the copy to the default
 * exchange with that same routing key, which delivers it to the failing queue only (never to the other
 * services bound to the topic). A delayed publish goes to `messaging.delay.<tier>` with its topic as
 * routing key and is dead-lettered to `messaging`, so it fans out as a normal publish. A delayed send
 * to a named queue uses the retry tiers. The original topic travels in header `x-messaging-topic`.
 *
 * Each tier queue has one TTL, so a 5 s retry never holds back a 100 ms one (RabbitMQ expires
 * messages only at the head of a queue). Requested delays are rounded UP to {@link DELAY_TIERS_MS},
 * so jittered delays reuse a bounded set of queues.
 *
 * A volatile request is worth nothing once its caller gave up, so it skips what makes an event
 * durable: it is published to `messaging.requests` (non-persistent, unconfirmed, `mandatory`, expiring
 * with its timeout), whose bindings mirror the main exchange's, into a queue per route that RabbitMQ
 * deletes with its last consumer: a request nobody consumes now is returned at once
 * (`UnroutableError`), and none waits for an instance that is gone. A durable request
 * (`request({ durable: true })`) goes through `messaging` into the route's own queue like an event.
 *
 * Work queues dead-letter to `<service>.dead-letter` too, but only when a quorum queue's
 * `x-delivery-limit` is exceeded (a message that crashes its consumer in a loop); library retries
 * never count there because each retry is a new copy and the original is acknowledged.
 */
import { createHash } from 'node:crypto';
import type { Channel, ChannelModel } from 'amqplib';
import type { SubscriptionSpec } from '../../backend/broker-backend.interface';
import { deadLetterQueueName } from '../../backend/queue-names';
import type { ResolvedAmqpOptions } from './amqp-backend.options';

/**
 * Delay tiers in milliseconds. A requested delay is rounded up to the next tier (at most 5/3 as long
 * up to an hour, twice as long beyond); delays above the last tier are capped at it.
 */
export const DELAY_TIERS_MS: readonly number[] = [
  100, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000,
  30_000, 45_000, 60_000, 90_000, 120_000, 180_000, 300_000, 450_000, 600_000, 900_000, 1_200_000,
  1_800_000, 2_700_000, 3_600_000, 7_200_000, 14_400_000, 21_600_000, 43_200_000, 86_400_000,
];

/** Kinds of delay tier: `retry` delivers to a queue by name, `delay` publishes to the topic exchange. */
export type TierKind = 'retry' | 'delay';

/** The tier that holds a message at least `delayMs` (capped at the longest tier). */
export function pickTier(delayMs: number): number {
  for (const tier of DELAY_TIERS_MS) if (tier >= delayMs) return tier;
  return DELAY_TIERS_MS[DELAY_TIERS_MS.length - 1];
}

/** Name of the exchange and queue of one tier. */
export function tierName(exchange: string, kind: TierKind, tierMs: number): string {
  return `${exchange}.${kind}.${tierMs}`;
}

export { deadLetterQueueName };

/** Whether `queue` is one of the tier queues of `exchange`: never a place to replay a message to. */
export function isTierQueue(exchange: string, queue: string): boolean {
  return queue.startsWith(`${exchange}.retry.`) || queue.startsWith(`${exchange}.delay.`);
}

/** Declares the main topic exchange. */
export async function assertMainExchange(ch: Channel, options: ResolvedAmqpOptions): Promise<void> {
  await ch.assertExchange(options.exchange, 'topic', { durable: true });
}

/** The exchange of volatile requests of the main exchange `exchange`. */
export function requestExchangeName(exchange: string): string {
  return `${exchange}.requests`;
}

/**
 * The queue of the volatile requests of route queue `queue` in generation `generation` (see
 * {@link assertRequestQueue}): the same for every instance of the route; a name over RabbitMQ's 255
 * bytes is shortened to a hash of the route's queue.
 */
export function requestQueueName(exchange: string, queue: string, generation = 0): string {
  const suffix = generation === 0 ? '' : `.g${generation}`;
  const name = `${requestExchangeName(exchange)}.${queue}${suffix}`;
  if (Buffer.byteLength(name) <= 255) return name;
  const hash = createHash('sha256').update(queue).digest('hex');
  return `${requestExchangeName(exchange)}.${hash}${suffix}`;
}

/** Declares the exchange of volatile requests (next to the main one, on every connection). */
export async function assertRequestExchange(
  ch: Channel,
  options: ResolvedAmqpOptions,
): Promise<void> {
  await ch.assertExchange(requestExchangeName(options.exchange), 'topic', { durable: true });
}

/** A request queue declared and never consumed (its instance died in between) goes after this. */
const REQUEST_QUEUE_EXPIRES_MS = 60_000;

/** Generations of a route's request queue (see {@link assertRequestQueue}). */
export const REQUEST_QUEUE_GENERATIONS = 8;

/** What a passive declaration tells of one generation of a request queue. */
export type RequestQueueProbe =
  { state: 'absent' } | { state: 'down' } | { state: 'up'; consumers: number };

/**
 * The generation of a route's request queue that an instance consumes, from the probes of all of
 * them (index = generation): the live one with the most consumers (the lowest on a tie), so that
 * every instance ends up on the same one; none live, the first free one; none free, `undefined`.
 */
export function pickRequestGeneration(probes: readonly RequestQueueProbe[]): number | undefined {
  let best: number | undefined;
  let bestConsumers = -1;
  probes.forEach((probe, generation) => {
    if (probe.state === 'up' && probe.consumers > bestConsumers) {
      best = generation;
      bestConsumers = probe.consumers;
    }
  });
  if (best !== undefined) return best;
  const free = probes.findIndex((probe) => probe.state === 'absent');
  return free === -1 ? undefined : free;
}

/**
 * Declares the request queue a route's instance consumes and binds it to the route's topics on the
 * request exchange; returns its name. Classic (requests are not persistent: nothing of them is written
 * to disk), auto-delete (it goes with its last consumer), and durable only because RabbitMQ 4.3
 * refuses transient queues that are not exclusive; `x-expires` removes one nobody consumes.
 *
 * A classic queue lives on one node, and while that node is down RabbitMQ refuses to declare it
 * (404, "home node ... is down or inaccessible"), so one name would leave the route without requests
 * until the node returns. The name has generations instead: `<name>`, `<name>.g1`, ... Each instance
 * probes them all and joins the one {@link pickRequestGeneration} picks, so when the node of the one
 * in use dies, its consumers (re-subscribing) move to the next free one together. A request is routed
 * to every generation bound; only the consumed one handles it (the copy in another waits for nobody
 * and expires with the request's timeout), and an abandoned generation expires once its node is back.
 */
export async function assertRequestQueue(
  conn: ChannelModel,
  ch: Channel,
  options: ResolvedAmqpOptions,
  queue: string,
  topics: readonly string[],
): Promise<string> {
  const names = Array.from({ length: REQUEST_QUEUE_GENERATIONS }, (_, generation) =>
    requestQueueName(options.exchange, queue, generation),
  );
  const probes = await Promise.all(names.map((name) => probeQueue(conn, name)));
  const generation = pickRequestGeneration(probes);
  if (generation === undefined) {
    throw new Error(
      `Every generation of the request queue of '${queue}' (${names[0]} and .g1 to ` +
        `.g${REQUEST_QUEUE_GENERATIONS - 1}) is on a RabbitMQ node that is down; volatile requests ` +
        `of this route resume when one of those nodes is back (or delete the queues)`,
    );
  }
  const name = names[generation];
  await ch.assertQueue(name, {
    durable: true,
    autoDelete: true,
    arguments: { 'x-queue-type': 'classic', 'x-expires': REQUEST_QUEUE_EXPIRES_MS },
  });
  const exchange = requestExchangeName(options.exchange);
  for (const topic of topics) await ch.bindQueue(name, exchange, topic);
  return name;
}

/** Declares a subscription's work queue and binds it to each of its topic patterns. */
export async function assertWorkQueue(
  ch: Channel,
  options: ResolvedAmqpOptions,
  queue: string,
  service: string,
  topics: readonly string[],
): Promise<void> {
  const args: Record<string, unknown> = {};
  if (options.queueType === 'quorum') {
    Object.assign(args, quorumArguments(), {
      'x-delivery-limit': options.deliveryLimit,
      'x-dead-letter-exchange': '',
      'x-dead-letter-routing-key': deadLetterQueueName(service),
    });
  }
  await ch.assertQueue(queue, { durable: true, arguments: args });
  for (const topic of topics) await ch.bindQueue(queue, options.exchange, topic);
}

/** Declares a service's dead-letter queue (never a delivery limit: listing it requeues its messages). */
export async function assertDeadLetterQueue(
  ch: Channel,
  options: ResolvedAmqpOptions,
  service: string,
): Promise<void> {
  const args = options.queueType === 'quorum' ? { 'x-queue-type': 'quorum' } : {};
  await ch.assertQueue(deadLetterQueueName(service), { durable: true, arguments: args });
}

/** Declares one tier: a fanout exchange and its TTL queue that dead-letters where `kind` says. */
export async function assertTier(
  ch: Channel,
  options: ResolvedAmqpOptions,
  kind: TierKind,
  tierMs: number,
): Promise<void> {
  const name = tierName(options.exchange, kind, tierMs);
  const args: Record<string, unknown> = {
    'x-message-ttl': tierMs,
    'x-dead-letter-exchange': kind === 'retry' ? '' : options.exchange,
  };
  if (options.queueType === 'quorum') Object.assign(args, quorumArguments());
  await ch.assertExchange(name, 'fanout', { durable: true });
  await ch.assertQueue(name, { durable: true, arguments: args });
  await ch.bindQueue(name, name, '');
}

/**
 * Declares what a subscription consumes: its work queue with its bindings, the exchanges, its
 * service's dead-letter queue; for a named queue (`spec.external`), the queue only if it does not
 * exist (as plain as possible: it is someone else's) and the dead-letter queue. Nothing of ours with
 * `assertTopology: false`.
 */
export async function declareSubscription(
  conn: ChannelModel,
  ch: Channel,
  options: ResolvedAmqpOptions,
  spec: SubscriptionSpec,
): Promise<void> {
  if (spec.external) {
    if (!(await queueExists(conn, spec.queue))) await ch.assertQueue(spec.queue, { durable: true });
    if (options.assertTopology) await assertDeadLetterQueue(ch, options, spec.service);
    return;
  }
  if (!options.assertTopology) return;
  await assertMainExchange(ch, options);
  await assertRequestExchange(ch, options);
  await assertWorkQueue(ch, options, spec.queue, spec.service, spec.topics);
  await assertDeadLetterQueue(ch, options, spec.service);
}

/**
 * Quorum queue arguments: dead-lettering at least once (the broker keeps a message until the target
 * queue confirmed it), which RabbitMQ allows only with `reject-publish` overflow.
 */
function quorumArguments(): Record<string, unknown> {
  return {
    'x-queue-type': 'quorum',
    'x-dead-letter-strategy': 'at-least-once',
    'x-overflow': 'reject-publish',
  };
}

/**
 * Whether `queue` exists, checked passively on a throwaway channel (a failed passive declare closes
 * the channel it ran on, so never on a channel in use).
 */
export async function queueExists(conn: ChannelModel, queue: string): Promise<boolean> {
  return (await probeQueue(conn, queue)).state !== 'absent';
}

/**
 * A passive declaration of `queue` on a throwaway channel: absent, down (it exists, but its node is
 * down or it crashed: RabbitMQ says 404 too, in other words), or up with its number of consumers.
 */
async function probeQueue(conn: ChannelModel, queue: string): Promise<RequestQueueProbe> {
  const probe = await conn.createChannel();
  probe.on('error', () => undefined);
  try {
    const { consumerCount } = await probe.checkQueue(queue);
    await probe.close().catch(() => undefined);
    return { state: 'up', consumers: consumerCount };
  } catch (error) {
    const { code, message } = error as { code?: unknown; message?: unknown };
    if (code !== 404) {
      await probe.close().catch(() => undefined);
      throw error;
    }
    return /\bno queue\b/.test(String(message)) ? { state: 'absent' } : { state: 'down' };
  }
}
