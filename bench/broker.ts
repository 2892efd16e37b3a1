/**
 * The orchestrator's side of the brokers: checks each answers (bounded in time), reads its version,
 * and sweeps what a run left (names start with the run's prefix): RabbitMQ queues and exchanges
 * with `rabbitmqctl` + AMQP deletes, Redis keys with `SCAN`, JetStream streams by name.
 */
import { execFileSync } from 'node:child_process';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import * as amqplib from 'amqplib';
import { Redis } from 'ioredis';
import { deleteNatsStreams, deleteRedisKeys } from './contenders/cleanup';
import type { Broker } from './shared/protocol';

/** How long a broker has to answer the orchestrator's first connection. */
const PROBE_MS = 5_000;

/** `promise`, or a rejection after `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The broker's product and version; throws (within a few seconds) when it does not answer. */
export function probe(broker: Broker, url: string): Promise<string> {
  switch (broker) {
    case 'rabbitmq':
      return within(brokerVersion(url), PROBE_MS);
    case 'redis':
      return within(redisVersion(url), PROBE_MS);
    case 'nats':
      return within(natsVersion(url), PROBE_MS);
  }
}

/** A Redis connection that fails at once instead of retrying (the probe and the sweep). */
async function redisOnce(url: string): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: PROBE_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let cause: Error | undefined;
  redis.on('error', (error: Error) => (cause = error));
  try {
    await redis.connect();
  } catch (error) {
    // ioredis rejects with "Connection is closed."; the socket's error says why.
    throw cause ?? error;
  }
  return redis;
}

async function redisVersion(url: string): Promise<string> {
  const redis = await redisOnce(url);
  try {
    const info = await redis.info('server');
    return `Redis ${/redis_version:(\S+)/.exec(info)?.[1] ?? '?'}`;
  } finally {
    redis.disconnect();
  }
}

/** NATS's version; throws also when JetStream is not enabled. */
async function natsVersion(url: string): Promise<string> {
  const nc = await natsConnect({ servers: url, timeout: PROBE_MS, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.getAccountInfo();
    return `NATS ${nc.info?.version ?? '?'} (JetStream)`;
  } catch (error) {
    throw new Error(`JetStream does not answer: ${String(error)}`, { cause: error });
  } finally {
    await nc.close();
  }
}

/**
 * Deletes what is left of a run on `broker` (names starting with `prefix`); returns what it deleted,
 * or undefined when it cannot tell (RabbitMQ without `rabbitmqctl`).
 */
export async function sweepBroker(
  broker: Broker,
  url: string,
  prefix: string,
): Promise<string[] | undefined> {
  switch (broker) {
    case 'rabbitmq':
      return sweep(url, prefix);
    case 'redis': {
      const redis = await redisOnce(url);
      try {
        return (await deleteRedisKeys(redis, prefix)).map((k) => `Redis key ${k}`);
      } finally {
        redis.disconnect();
      }
    }
    case 'nats': {
      const nc = await natsConnect({ servers: url, timeout: PROBE_MS, reconnect: false });
      try {
        const streams = await deleteNatsStreams(await jetstreamManager(nc), prefix);
        return streams.map((name) => `JetStream stream ${name}`);
      } finally {
        await nc.close();
      }
    }
  }
}

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

/** A broker URL without its password, for the report. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
}
