/**
 * Deletes what a contender declared, by name or by its unique prefix, and nothing else:
 * RabbitMQ queues and exchanges on a connection of its own (deleting a name that does not exist is
 * not an error), Redis keys (`SCAN MATCH <prefix>*`, then `UNLINK`; never `FLUSHALL`), JetStream
 * streams (their consumers go with them). The orchestrator also sweeps every name of the run at the
 * end, so a child that died cannot leave anything behind.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import * as amqplib from 'amqplib';
import type { Redis } from 'ioredis';

export async function deleteNames(
  url: string,
  queues: readonly string[],
  exchanges: readonly string[],
): Promise<void> {
  const conn = await amqplib.connect(url);
  try {
    const ch = await conn.createChannel();
    for (const queue of queues) await ch.deleteQueue(queue);
    for (const exchange of exchanges) await ch.deleteExchange(exchange);
  } finally {
    await conn.close();
  }
}

/** Deletes every key starting with `prefix`; returns their names. */
export async function deleteRedisKeys(redis: Redis, prefix: string): Promise<string[]> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  const deleted: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) {
      await redis.unlink(...keys);
      deleted.push(...keys);
    }
  } while (cursor !== '0');
  return deleted;
}

/** Deletes every JetStream stream whose name starts with `prefix`; returns their names. */
export async function deleteNatsStreams(jsm: JetStreamManager, prefix: string): Promise<string[]> {
  const mine: string[] = [];
  for await (const name of jsm.streams.names()) if (name.startsWith(prefix)) mine.push(name);
  for (const name of mine) await jsm.streams.delete(name);
  return mine;
}
