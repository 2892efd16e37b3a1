/**
 * Crash test: a consumer process is SIGKILLed mid-handler under load; another instance claims what
 * it left pending (`XAUTOCLAIM` after `claimIdleMs`). Nothing is lost (every message is handled)
 * and nothing is left unacknowledged (no pending entry, no delayed message).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import {
  deleteRedisPrefix,
  REDIS_URL,
  redisClient,
  uniqueRedisPrefix,
} from '../../testing/redis.fixture';
import { waitFor } from '../../testing/wait-for';
import type { CrashChildConfig } from './redis-crash-consumer.fixture';
import { RedisStreamsBackend } from './index';

const ROOT = join(__dirname, '..', '..', '..', '..', '..');
const REGISTER = join(ROOT, 'scripts', 'faults-register.js');
const ENTRY = join(__dirname, 'redis-crash-consumer.fixture.ts');
const PREFIX = uniqueRedisPrefix('crash');
const TOTAL = 200;

const redis = redisClient();
let child: ChildProcess | undefined;
let rescuer: RedisStreamsBackend | undefined;
let producer: RedisStreamsBackend | undefined;

beforeAll(() => Logger.overrideLogger(false));

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await rescuer?.close();
  await producer?.close();
  await redis.quit();
  await deleteRedisPrefix(PREFIX);
}, 30_000);

/** Starts the child and resolves once it prints READY (rejects if it exits first, or after 30 s). */
function startChild(config: CrashChildConfig): Promise<ChildProcess> {
  const proc = spawn(process.execPath, ['-r', REGISTER, ENTRY, JSON.stringify(config)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = proc;
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child not READY:\n${output}`)), 30_000);
    proc.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    proc.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (!output.includes('READY')) return;
      clearTimeout(timer);
      resolve(proc);
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`child exited (${code ?? signal}) before READY:\n${output}`));
    });
  });
}

it('loses nothing and leaves nothing pending when a consumer is SIGKILLed mid-handler', async () => {
  const service = 'crash';
  const topic = 'crash.work';
  const group = `${service}.work`;
  const proc = await startChild({
    url: REDIS_URL,
    prefix: PREFIX,
    service,
    topic,
    concurrency: 10,
    handlerMs: [50, 100],
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    proc.once('exit', (_code, signal) => resolve(signal)),
  );

  producer = new RedisStreamsBackend({ url: REDIS_URL, prefix: PREFIX });
  await producer.connect();
  const ids: string[] = [];
  for (let i = 0; i < TOTAL; i++) {
    const messageId = randomUUID();
    ids.push(messageId);
    await producer.publish(
      {
        topic,
        body: Buffer.from(JSON.stringify({ i })),
        headers: {},
        messageId,
        contentType: 'application/json',
        timestamp: Date.now(),
      },
      { mandatory: true },
    );
  }

  // Mid-load (about 1.5 s of work in all): some handled, the child busy with 10 more.
  await waitFor(async () => (await redis.scard(`${PREFIX}:handled`)) >= 30);
  proc.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
  const stream = `${PREFIX}:t:${topic}`;
  const orphans = await pendingCount(stream, group);
  expect(orphans).toBeGreaterThan(0);

  rescuer = new RedisStreamsBackend({
    url: REDIS_URL,
    prefix: PREFIX,
    claimIdleMs: 500,
    blockMs: 100,
  });
  await rescuer.connect();
  let redelivered = 0;
  await rescuer.subscribe(
    { service, queue: group, topics: [topic], external: false, concurrency: 10 },
    async (delivery) => {
      if (delivery.redelivered) redelivered++;
      await redis.sadd(`${PREFIX}:handled`, delivery.messageId);
      return { action: 'ack' };
    },
  );

  await waitFor(async () => (await redis.scard(`${PREFIX}:handled`)) === TOTAL, {
    timeoutMs: 15_000,
    message: 'every message handled',
  });
  expect((await redis.smembers(`${PREFIX}:handled`)).sort()).toEqual([...ids].sort());
  // What the child held could only come back by a claim.
  expect(redelivered).toBeGreaterThanOrEqual(orphans);
  await waitFor(async () => (await pendingCount(stream, group)) === 0, {
    message: 'no pending entry on the topic stream',
  });
  expect(await pendingCount(`${PREFIX}:q:${group}`, group)).toBe(0);
  expect(await redis.zcard(`${PREFIX}:delayed`)).toBe(0);
}, 40_000);

async function pendingCount(stream: string, group: string): Promise<number> {
  const [count] = (await redis.xpending(stream, group)) as [number];
  return Number(count);
}
