import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import * as amqplib from 'amqplib';
import { runBackendContract } from '../../testing/backend-contract';
import { AmqpBackend } from './index';

const URL = process.env.BROKER_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const RUN = randomUUID().slice(0, 8);
const run = promisify(execFile);

runBackendContract('amqp', () => new AmqpBackend({ url: URL, exchange: `contract-${RUN}` }), {
  servicePrefix: `amqp-${RUN}`,
});

afterAll(async () => {
  const conn = await amqplib.connect(URL);
  const ch = await conn.createChannel();
  const names = async (what: string): Promise<string[]> =>
    (await run('rabbitmqctl', ['-q', what, 'name'])).stdout
      .split('\n')
      .map((s) => s.trim())
      .filter((s) => s.includes(RUN));
  for (const queue of await names('list_queues')) await ch.deleteQueue(queue);
  for (const exchange of await names('list_exchanges')) await ch.deleteExchange(exchange);
  await ch.close();
  await conn.close();
}, 30_000);
