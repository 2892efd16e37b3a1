/**
 * The orchestrator's side of the broker: checks it answers, reads its version, and sweeps every
 * queue and exchange of a run (names start with the run's prefix) with `rabbitmqctl` + AMQP deletes.
 */
import { execFileSync } from 'node:child_process';
import * as amqplib from 'amqplib';

/** RabbitMQ's version from the connection's server properties; throws when the broker is down. */
export async function brokerVersion(url: string): Promise<string> {
  const conn = await amqplib.connect(url);
  try {
    const props = (conn.connection as unknown as { serverProperties?: Record<string, unknown> })
      .serverProperties;
    const product = typeof props?.product === 'string' ? props.product : 'RabbitMQ';
    const version = typeof props?.version === 'string' ? props.version : '?';
    return `${product} ${version}`;
  } finally {
    await conn.close();
  }
}

function list(kind: 'list_queues' | 'list_exchanges'): string[] | undefined {
  try {
    const out = execFileSync('rabbitmqctl', ['-q', kind, 'name', '--no-table-headers'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 30_000,
    });
    return out.split('\n').map((line) => line.trim());
  } catch {
    return undefined;
  }
}

/**
 * Deletes every queue and exchange whose name starts with `prefix`; returns what it deleted, or
 * undefined when `rabbitmqctl` is not available (a remote broker).
 */
export async function sweep(url: string, prefix: string): Promise<string[] | undefined> {
  const queues = list('list_queues');
  const exchanges = list('list_exchanges');
  if (!queues || !exchanges) return undefined;
  const mine = (name: string): boolean => name.startsWith(prefix);
  const leftQueues = queues.filter(mine);
  const leftExchanges = exchanges.filter(mine);
  if (leftQueues.length + leftExchanges.length === 0) return [];
  const conn = await amqplib.connect(url);
  try {
    const ch = await conn.createChannel();
    for (const queue of leftQueues) await ch.deleteQueue(queue);
    for (const exchange of leftExchanges) await ch.deleteExchange(exchange);
  } finally {
    await conn.close();
  }
  return [...leftQueues.map((q) => `queue ${q}`), ...leftExchanges.map((e) => `exchange ${e}`)];
}

/** The broker URL without its password, for the report. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
}
