/**
 * The consumer groups of one subscription: its binding (`BIND_SCRIPT`, which also creates its group
 * on every known topic it matches), a group created where one may be missing, and the removal of
 * this instance's consumer name where nothing is pending for it.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { SubscriptionSpec } from '../../backend/broker-backend.interface';
import { BIND_SCRIPT, runScript } from './redis-scripts';
import type { RedisKeys } from './redis-topology';

/** Stores the binding of `spec` and creates its groups; resolves the known topics it matches. */
export async function bindQueue(
  command: Redis,
  keys: RedisKeys,
  spec: SubscriptionSpec,
): Promise<string[]> {
  const args = [keys.prefix, spec.queue, JSON.stringify(spec.topics), randomUUID()];
  return (await runScript(command, BIND_SCRIPT, 1, keys.slotKey, ...args)) as string[];
}

/** Creates group `group` on `stream` (and the stream) from `start`, unless it exists. */
export async function createGroup(
  command: Redis,
  stream: string,
  group: string,
  start: '0' | '$',
): Promise<void> {
  await command.xgroup('CREATE', stream, group, start, 'MKSTREAM').catch((error: Error) => {
    if (!error.message.includes('BUSYGROUP')) throw error;
  });
}

/**
 * Removes consumer `consumer` from group `group` of each of `streams` where nothing is pending for
 * it (a pending delivery keeps its consumer, so that another instance claims it).
 */
export async function forgetConsumer(
  command: Redis,
  streams: Iterable<string>,
  group: string,
  consumer: string,
): Promise<void> {
  for (const stream of streams) {
    const pending = await command.xpending(stream, group, '-', '+', 1, consumer);
    if (pending.length === 0) await command.xgroup('DELCONSUMER', stream, group, consumer);
  }
}
