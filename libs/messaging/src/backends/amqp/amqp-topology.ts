/**
 * RabbitMQ topology of {@link AmqpBackend}: names and idempotent declarations.
 *
 * With `exchange = 'messaging'` (the default):
 *
 * | Name                          | Kind                     | Role                                                         |
 * | ----------------------------- | ------------------------ | ------------------------------------------------------------ |
 * | `messaging`                   | topic exchange, durable  | every topic is published here                                |
 * | `<service>.<route>`           | queue (quorum), durable  | one per subscription (`spec.queue`), bound to its topics     |
 * | `messaging.delay-level.<n>`   | topic exchange, durable  | level n (0–31): bit n of the delay: into its queue, or on    |
 * | `messaging.delay-level.<n>`   | queue, TTL 2^n ms        | holds a message 2^n ms, then dead-letters it to level n − 1  |
 * | `messaging.delay-delivery`    | topic exchange, durable  | after level 0: hands each queue its own (bound by address)   |
 * | `<service>.<route>` (ordered) | the same, `x-single-active-consumer` | an exclusive subscription: one instance consumes, the others stand by |
 * | `<service>.dead-letter`       | queue (quorum), durable  | the service's dead letters                                   |
 * | `<service>.dead-letter.lock`  | queue, exclusive         | held while one instance lists or replays them (a lock)       |
 * | `messaging.requests`          | topic exchange, durable  | volatile requests (`request()` without `durable`)            |
 * | `messaging.requests.<queue>`  | queue (classic), auto-delete | a route's volatile requests; lives while its consumers do |
 * | `messaging.requests-g<n>.<queue>` | the same             | later generations: one is used while the node of another is down |
 *
 * Everything that waits waits in the delay levels (`amqp-delay-levels.ts`): a retry copy, a delayed
 * send to a named queue, and the parked copy of a delayed publish to a topic (`amqp-parking.ts`),
 * always addressed to one queue. The delay is written in binary in the routing key, each level holds
 * its bit's share, and the delivery exchange hands the message to its queue only (never to the other
 * services bound to the topic): exact to the millisecond, from 1 ms to 49.7 days, with 32 fixed
 * queues and no plugin. A delayed publish to a topic is published at once, so that it is refused
 * (`UnroutableError`) when no queue is bound, and each queue's consumer parks its copy until due.
 * The original topic of a copy travels in header `x-messaging-topic`.
 *
 * Versions before the levels held delays in TTL tiers (`messaging.retry.<ms>`, `messaging.delay.<ms>`,
 * rounded up). They are no longer declared, and never deleted: what they hold still dead-letters to
 * its queue or topic when it expires, and they can be deleted once empty.
 *
 * A volatile request is worth nothing once its caller gave up, so it skips what makes an event
 * durable: it is published to `messaging.requests` (non-persistent, unconfirmed, `mandatory`, expiring
 * with its timeout), whose bindings mirror the main exchange's, into a queue per route that RabbitMQ
 * deletes with its last consumer: a request nobody consumes now is returned at once
 * (`UnroutableError`), and none waits for an instance that is gone. A durable request
 * (`request({ durable: true })`) goes through `messaging` into the route's own queue like an event.
 *
 * An exclusive subscription (`spec.exclusive`, an ordered route) declares its queue with
 * `x-single-active-consumer: true` (quorum queues accept it since RabbitMQ 3.8): the broker delivers
 * to one consumer, in queue order, and makes the next one active when that one's channel or
 * connection goes (see `AmqpConsumer` for a cancel that keeps the order). A queue cannot change its
 * arguments, so a route that became ordered (or stopped being) on an existing queue fails at
 * start-up with a `MessagingConfigError` that names the fix, never a bare PRECONDITION_FAILED.
 *
 * Work queues dead-letter to `<service>.dead-letter` too, but only when a quorum queue's
 * `x-delivery-limit` is exceeded (a message that crashes its consumer in a loop); library retries
 * never count there because each retry is a new copy and the original is acknowledged.
 */
import { createHash } from 'node:crypto';
import type { Channel, ChannelModel } from 'amqplib';
import type { SubscriptionSpec } from '../../backend/broker-backend.interface';
import { exclusiveMismatch } from '../../backend/exclusive';
import { deadLetterQueueName } from '../../backend/queue-names';
import type { ResolvedAmqpOptions } from './amqp-backend.options';
import { assertDelayDelivery, bindDelayedQueue } from './amqp-delay-levels';
import { quorumArguments } from './amqp-quorum';

export { deadLetterQueueName };

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
 * bytes is shortened to a hash of the route's queue. A later generation is `<exchange>.requests-g<n>.`
 * and the route's queue, which no route's own name can produce.
 */
export function requestQueueName(exchange: string, queue: string, generation = 0): string {
  const prefix = `${requestExchangeName(exchange)}${generation === 0 ? '' : `-g${generation}`}`;
  const name = `${prefix}.${queue}`;
  if (Buffer.byteLength(name) <= 255) return name;
  return `${prefix}.${createHash('sha256').update(queue).digest('hex')}`;
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
export const REQUEST_QUEUE_GENERATIONS = 4;

/** What a passive declaration tells of one generation of a request queue. */
export type RequestQueueProbe =
  { state: 'absent' } | { state: 'down' } | { state: 'up'; consumers: number };

/** Whether a probed generation has consumers: instances take their volatile requests from it. */
function isConsumed(probe: RequestQueueProbe): boolean {
  return probe.state === 'up' && probe.consumers > 0;
}

/** Which generation of its request queue an instance joins, and what it clears on the way. */
export interface RequestQueueChoice {
  readonly generation: number;
  /** It is live and nobody consumes it: what it holds is copies of requests served elsewhere. */
  readonly purge: boolean;
  /** Other live generations nobody consumes, to delete (if still unused) so they stop taking copies. */
  readonly drop: readonly number[];
}

/**
 * The generation of a route's request queue that an instance joins, from the probes of all of them
 * (index = generation): the lowest one consumed, so that every instance ends up on the same one and
 * a later one gives way; none consumed, the lowest live one; none live, the first free one; none
 * free, `undefined`.
 */
export function pickRequestGeneration(
  probes: readonly RequestQueueProbe[],
): RequestQueueChoice | undefined {
  const consumed = probes.findIndex(isConsumed);
  const live = probes.findIndex((p) => p.state === 'up');
  const free = probes.findIndex((p) => p.state === 'absent');
  const generation = consumed !== -1 ? consumed : live !== -1 ? live : free;
  if (generation === -1) return undefined;
  const idle = (p: RequestQueueProbe) => p.state === 'up' && p.consumers === 0;
  return {
    generation,
    purge: idle(probes[generation]),
    drop: probes.flatMap((p, g) => (g !== generation && idle(p) ? [g] : [])),
  };
}

/**
 * Declares the request queue a route's instance consumes and binds it to the route's topics on the
 * request exchange; returns its name and generation. Classic (requests are not persistent: nothing
 * of them is written to disk), auto-delete (it goes with its last consumer), and durable only because
 * RabbitMQ 4.3 refuses transient queues that are not exclusive; `x-expires` removes one nobody consumes.
 *
 * A classic queue lives on one node, and while that node is down RabbitMQ refuses to declare it
 * (404, "home node ... is down or inaccessible"), so one name would leave the route without requests
 * until the node returns. The name has generations instead (see {@link requestQueueName}). Each
 * instance probes them in order, up to the first one consumed, and joins the one
 * {@link pickRequestGeneration} picks, so when the node of the one in use dies, its consumers
 * (re-subscribing) move to a live or free one together. A request is routed to every generation
 * bound; a live one nobody consumes would keep copies of requests served elsewhere, so it is deleted
 * when another is joined, and purged when joined itself (which also drops what a racing instance's
 * requester sent in the instant between its declaration and its consume: those requests time out).
 * An instance on a later generation looks every {@link REQUEST_GENERATION_RECHECK_MS} for an earlier
 * one consumed (two groups that chose apart, in a race or a partition) and joins it (see
 * `AmqpConsumer`).
 */
export async function assertRequestQueue(
  conn: ChannelModel,
  ch: Channel,
  options: ResolvedAmqpOptions,
  queue: string,
  topics: readonly string[],
): Promise<{ name: string; generation: number }> {
  const names = requestQueueGenerations(options, queue);
  // In order, up to the first one consumed (the one picked then): in the usual case one passive
  // declaration, and no 404 for RabbitMQ to log as a channel error.
  const probes: RequestQueueProbe[] = [];
  for (const name of names) {
    const probe = await probeQueue(conn, name);
    probes.push(probe);
    if (isConsumed(probe)) break;
  }
  const choice = pickRequestGeneration(probes);
  if (choice === undefined) {
    throw new Error(
      `Every generation of the request queue of '${queue}' (${names.join(', ')}) is on a ` +
        `RabbitMQ node that is down; volatile requests of this route resume when one of those ` +
        `nodes is back`,
    );
  }
  await Promise.all(choice.drop.map((g) => deleteIfUnused(conn, names[g])));
  const name = names[choice.generation];
  await ch.assertQueue(name, {
    durable: true,
    autoDelete: true,
    arguments: { 'x-queue-type': 'classic', 'x-expires': REQUEST_QUEUE_EXPIRES_MS },
  });
  if (choice.purge) await ch.purgeQueue(name);
  const exchange = requestExchangeName(options.exchange);
  for (const topic of topics) await ch.bindQueue(name, exchange, topic);
  return { name, generation: choice.generation };
}

/** How often an instance on a later generation of its request queue looks for an earlier one in use. */
export const REQUEST_GENERATION_RECHECK_MS = 30_000;

/** Whether a generation before `generation` of route queue `queue`'s request queue has consumers. */
export async function earlierRequestGenerationInUse(
  conn: ChannelModel,
  options: ResolvedAmqpOptions,
  queue: string,
  generation: number,
): Promise<boolean> {
  const earlier = requestQueueGenerations(options, queue).slice(0, generation);
  const probes = await Promise.all(earlier.map((n) => probeQueue(conn, n)));
  return probes.some(isConsumed);
}

function requestQueueGenerations(options: ResolvedAmqpOptions, queue: string): string[] {
  return Array.from({ length: REQUEST_QUEUE_GENERATIONS }, (_, generation) =>
    requestQueueName(options.exchange, queue, generation),
  );
}

/** Deletes `queue` if nobody consumes it, on a throwaway channel; a refusal (consumed now) is fine. */
async function deleteIfUnused(conn: ChannelModel, queue: string): Promise<void> {
  const ch = await conn.createChannel();
  ch.on('error', () => undefined);
  await ch.deleteQueue(queue, { ifUnused: true }).then(
    () => ch.close().catch(() => undefined),
    () => undefined,
  );
}

/**
 * Declares a subscription's work queue (with a single active consumer when `spec.exclusive`) and
 * binds it to each of its topic patterns.
 */
export async function assertWorkQueue(
  ch: Channel,
  options: ResolvedAmqpOptions,
  spec: SubscriptionSpec,
): Promise<void> {
  const { queue, service, topics } = spec;
  const args: Record<string, unknown> = {};
  if (options.queueType === 'quorum') {
    Object.assign(args, quorumArguments(), {
      'x-delivery-limit': options.deliveryLimit,
      'x-dead-letter-exchange': '',
      'x-dead-letter-routing-key': deadLetterQueueName(service),
    });
  }
  if (spec.exclusive) args['x-single-active-consumer'] = true;
  try {
    await ch.assertQueue(queue, { durable: true, arguments: args });
  } catch (error) {
    if (!/inequivalent arg 'x-single-active-consumer'/.test(String(error))) throw error;
    const fix = `delete the queue (rabbitmqctl delete_queue ${queue}: its messages go with it)`;
    throw exclusiveMismatch(queue, spec.exclusive === true, 'on RabbitMQ', fix);
  }
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

/**
 * Declares what a subscription consumes: its work queue with its bindings, the exchanges, its
 * service's dead-letter queue; for a named queue (`spec.external`), the queue only if it does not
 * exist (as the plain tutorials declare theirs: it is someone else's) and the dead-letter queue. Nothing of ours with
 * `assertTopology: false`.
 */
export async function declareSubscription(
  conn: ChannelModel,
  ch: Channel,
  options: ResolvedAmqpOptions,
  spec: SubscriptionSpec,
): Promise<void> {
  if (spec.external) {
    if (!(await queueExists(conn, spec.queue))) await declareNamedQueue(conn, ch, spec.queue);
    if (options.assertTopology) await assertDeadLetterQueue(ch, options, spec.service);
    return;
  }
  if (!options.assertTopology) return;
  await assertMainExchange(ch, options);
  await assertRequestExchange(ch, options);
  await assertWorkQueue(ch, options, spec);
  await assertDeadLetterQueue(ch, options, spec.service);
  // Bound again at each start: a queue deleted and declared again gets its delayed messages still.
  await assertDelayDelivery(ch, options);
  await bindDelayedQueue(ch, options, spec.queue);
}

/**
 * Declares a named queue nobody declared yet as the plain tutorials of every language declare theirs
 * (pika's `queue_declare('hello')`, Java's `queueDeclare(q, false, false, false, null)`, Go's
 * `QueueDeclare(q, false, …)`): not durable, so that their unmodified code declaring it later meets
 * the same queue, not a `PRECONDITION_FAILED`. A broker that refuses transient queues that are not
 * exclusive (RabbitMQ 4.3 by default; the tutorials fail there too) gets it durable. Tried on a
 * throwaway channel: a refused declare closes the channel it ran on.
 */
async function declareNamedQueue(conn: ChannelModel, ch: Channel, queue: string): Promise<void> {
  const trial = await conn.createChannel();
  trial.on('error', () => undefined); // the refusal below is the answer, not an error
  try {
    await trial.assertQueue(queue, { durable: false, autoDelete: false, exclusive: false });
    await trial.close().catch(() => undefined);
  } catch {
    await ch.assertQueue(queue, { durable: true });
  }
}

/**
 * Whether `queue` exists, checked passively on a throwaway channel (a failed passive declare closes
 * the channel it ran on, so never on a channel in use).
 */
export async function queueExists(conn: ChannelModel, queue: string): Promise<boolean> {
  return (await probeQueue(conn, queue)).state === 'up';
}

/**
 * A passive declaration of `queue` on a throwaway channel: absent, down (any other 404: its node is
 * down, or it crashed or is restarting), or up with its number of consumers.
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
    return /NOT_FOUND - no queue '/.test(String(message)) ? { state: 'absent' } : { state: 'down' };
  }
}
