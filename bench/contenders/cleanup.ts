/**
 * Deletes the queues and exchanges a contender declared, on a connection of its own (deleting a
 * name that does not exist is not an error). The orchestrator also sweeps every name of the run
 * with `rabbitmqctl` at the end, so a child that died cannot leave anything behind.
 */
import * as amqplib from 'amqplib';

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
