import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as amqplib from 'amqplib';

/** Broker of the RabbitMQ specs. */
export const BROKER_URL = process.env.BROKER_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

const run = promisify(execFile);

async function namesContaining(
  what: 'list_queues' | 'list_exchanges',
  marker: string,
): Promise<string[]> {
  const { stdout } = await run('rabbitmqctl', ['-q', what, 'name']);
  return stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((name) => name.includes(marker));
}

/**
 * Deletes every queue and exchange whose name contains `marker` (a per-run id that every service
 * name and exchange of the spec carries), so a run leaves nothing behind. Resolves with what it deleted.
 */
export async function deleteBrokerObjects(
  marker: string,
): Promise<{ queues: string[]; exchanges: string[] }> {
  const queues = await namesContaining('list_queues', marker);
  const exchanges = await namesContaining('list_exchanges', marker);
  const conn = await amqplib.connect(BROKER_URL);
  try {
    const ch = await conn.createChannel();
    for (const queue of queues) await ch.deleteQueue(queue);
    for (const exchange of exchanges) await ch.deleteExchange(exchange);
    await ch.close();
  } finally {
    await conn.close();
  }
  return { queues, exchanges };
}

/** Names of the queues whose name contains `marker`, as the broker lists them. */
export function queuesContaining(marker: string): Promise<string[]> {
  return namesContaining('list_queues', marker);
}
