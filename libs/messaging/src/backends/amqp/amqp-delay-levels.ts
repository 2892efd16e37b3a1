/**
 * The binary delay levels of {@link AmqpBackend} (the way NServiceBus delays on plain RabbitMQ, no
 * plugin): how a message waits an exact number of milliseconds before it reaches one queue.
 *
 * Level `n` (0 to {@link DELAY_LEVELS} - 1) is a topic exchange and a queue, both
 * `<exchange>.delay-level.<n>`, whose TTL is 2^n ms. A delayed message is published to the top
 * level's exchange with the routing key `<bit 31>.<bit 30>. … .<bit 0>.<address>`: its delay in ms
 * written in binary, then the address of its queue. Each level's exchange looks at its own bit: a `1`
 * goes into the level's queue, which holds it 2^n ms and dead-letters it (routing key unchanged) to
 * the next lower level's exchange; a `0` goes straight on, by an exchange-to-exchange binding. After
 * level 0, the delivery exchange `<exchange>.delay-delivery` routes it to its queue, which is bound
 * there by its address. Every delay from 1 ms to 2^32 - 1 ms (49.7 days) is held exactly, by the
 * broker, with a fixed set of 32 queues; a message waits in at most one queue per `1` bit of its delay.
 * Each level's queue has one TTL, so messages expire in the order they entered (RabbitMQ expires
 * only at the head of a queue) and a long delay never holds back a short one.
 */
import { createHash } from 'node:crypto';
import type { Channel } from 'amqplib';
import type { ResolvedAmqpOptions } from './amqp-backend.options';
import { quorumArguments } from './amqp-quorum';

/** Number of levels: the top one holds 2^31 ms (24.9 days). */
export const DELAY_LEVELS = 32;

/** The longest delay the levels hold in one pass: 2^32 - 1 ms (49.7 days). */
export const MAX_LEVEL_DELAY_MS = 2 ** DELAY_LEVELS - 1;

/** Routing keys are at most 255 bytes; the delay's bits take 2 bytes per level. */
const MAX_ADDRESS_BYTES = 255 - 2 * DELAY_LEVELS;

/** The exchange and queue of level `level`. */
export function delayLevelName(exchange: string, level: number): string {
  return `${exchange}.delay-level.${level}`;
}

const DELIVERY_SUFFIX = '.delay-delivery';

/** The exchange after level 0, where each queue that receives delayed messages is bound. */
export function delayDeliveryExchange(exchange: string): string {
  return `${exchange}${DELIVERY_SUFFIX}`;
}

/**
 * The delay the levels really apply to a requested one: whole milliseconds, rounded up (never
 * early), at least 1 ms and at most {@link MAX_LEVEL_DELAY_MS}.
 */
export function appliedDelayMs(delayMs: number): number {
  return Math.min(Math.max(Math.ceil(delayMs), 1), MAX_LEVEL_DELAY_MS);
}

/**
 * How `queue` is named in the routing key: itself, or a hash when it is too long to fit beside the
 * delay's bits or has a word that a topic binding would read as a wildcard (`*`, `#`).
 */
export function delayAddress(queue: string): string {
  const plain =
    Buffer.byteLength(queue) <= MAX_ADDRESS_BYTES &&
    !queue.split('.').some((word) => word === '*' || word === '#');
  return plain ? queue : `sha256-${createHash('sha256').update(queue).digest('hex')}`;
}

/** The routing key that holds a message {@link appliedDelayMs}(`delayMs`) before it reaches `queue`. */
export function delayRoutingKey(delayMs: number, queue: string): string {
  const ms = appliedDelayMs(delayMs);
  const bits: string[] = [];
  for (let level = DELAY_LEVELS - 1; level >= 0; level--) {
    bits.push(Math.floor(ms / 2 ** level) % 2 === 1 ? '1' : '0');
  }
  return `${bits.join('.')}.${delayAddress(queue)}`;
}

/** The binding pattern of level `level` that matches bit value `bit` (the delay's words come first). */
export function levelPattern(level: number, bit: '0' | '1'): string {
  return `${'*.'.repeat(DELAY_LEVELS - 1 - level)}${bit}.#`;
}

/** The binding of `queue` on the delivery exchange: any delay's bits, then its address. */
export function deliveryPattern(queue: string): string {
  return `${'*.'.repeat(DELAY_LEVELS)}${delayAddress(queue)}`;
}

/**
 * Declares every level and the delivery exchange (idempotent). The lowest level first, so that each
 * exchange a level dead-letters or passes to exists when the level is bound.
 */
export async function assertDelayLevels(ch: Channel, options: ResolvedAmqpOptions): Promise<void> {
  const delivery = delayDeliveryExchange(options.exchange);
  await assertDelayDelivery(ch, options);
  for (let level = 0; level < DELAY_LEVELS; level++) {
    const name = delayLevelName(options.exchange, level);
    const next = level === 0 ? delivery : delayLevelName(options.exchange, level - 1);
    const args: Record<string, unknown> = {
      'x-message-ttl': 2 ** level,
      'x-dead-letter-exchange': next,
    };
    if (options.queueType === 'quorum') Object.assign(args, quorumArguments());
    await ch.assertExchange(name, 'topic', { durable: true });
    await ch.assertQueue(name, { durable: true, arguments: args });
    await ch.bindQueue(name, name, levelPattern(level, '1'));
    await ch.bindExchange(next, name, levelPattern(level, '0'));
  }
}

/** Declares the delivery exchange (also at each subscription, which binds its queue there). */
export async function assertDelayDelivery(
  ch: Channel,
  options: ResolvedAmqpOptions,
): Promise<void> {
  await ch.assertExchange(delayDeliveryExchange(options.exchange), 'topic', { durable: true });
}

/** Binds `queue` on the delivery exchange, so that the levels can hand it its delayed messages. */
export async function bindDelayedQueue(
  ch: Channel,
  options: ResolvedAmqpOptions,
  queue: string,
): Promise<void> {
  await ch.bindQueue(queue, delayDeliveryExchange(options.exchange), deliveryPattern(queue));
}

const DELAY_EXCHANGE = /\.delay-(level\.\d+|delivery)$/;

/**
 * Whether a message delivered with `exchange` as its exchange came through the levels (a library
 * copy). RabbitMQ reports the exchange the last level queue dead-lettered it to: the delivery
 * exchange, or the exchange of a lower level (exchange-to-exchange bindings change nothing there).
 */
export function isDelayDelivery(exchange: string): boolean {
  return DELAY_EXCHANGE.test(exchange);
}

/** The exchange a delayed message is published to: the top level's. */
export function delayEntryExchange(exchange: string): string {
  return delayLevelName(exchange, DELAY_LEVELS - 1);
}

/**
 * Whether `queue` holds delayed messages of `exchange` (a level, or a tier of the versions before
 * the levels, which may still hold messages): never a place to replay a message to.
 */
export function isDelayQueue(exchange: string, queue: string): boolean {
  return ['delay-level', 'retry', 'delay'].some((kind) => queue.startsWith(`${exchange}.${kind}.`));
}
