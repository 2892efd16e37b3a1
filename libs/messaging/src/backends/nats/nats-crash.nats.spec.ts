import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import type { Delivery } from '../../backend/broker-backend.interface';
import { deleteNatsObjects, NATS_URL, natsAdmin, natsRunPrefix } from '../../testing/nats.fixture';
import { waitFor } from '../../testing/wait-for';
import type { CrashChildConfig } from './nats-crash-child.fixture';
import { NatsBackend } from './index';

const ROOT = join(__dirname, '..', '..', '..', '..', '..');
const REGISTER = join(ROOT, 'scripts', 'faults-register.js');
const CHILD = join(__dirname, 'nats-crash-child.fixture.ts');
const PREFIX = natsRunPrefix('nats-crash');
const TOTAL = 200;

/** The child consumer: its output lines, and its exit. */
function startChild(config: CrashChildConfig): {
  child: ChildProcess;
  done: Set<string>;
  ready: Promise<void>;
  exited: Promise<NodeJS.Signals | number | null>;
  output: () => string;
} {
  const child = spawn(process.execPath, ['-r', REGISTER, CHILD, JSON.stringify(config)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const done = new Set<string>();
  let output = '';
  let partial = '';
  let onReady!: () => void;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  child.stdout.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line === 'READY') onReady();
      if (line.startsWith('DONE ')) done.add(line.slice(5));
    }
  });
  child.stderr.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-5_000)));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code)),
  );
  return { child, done, ready, exited, output: () => output };
}

describe('NatsBackend when a consumer process is killed mid-handler', () => {
  const opened: NatsBackend[] = [];
  let started: ReturnType<typeof startChild> | undefined;

  beforeAll(() => Logger.overrideLogger(false));

  afterAll(async () => {
    // Only the PID this spec started, and only if it still runs.
    if (started && started.child.exitCode === null && started.child.signalCode === null) {
      process.kill(started.child.pid as number, 'SIGKILL');
      await started.exited;
    }
    await Promise.all(opened.map((b) => b.close()));
    expect(await deleteNatsObjects(PREFIX)).toHaveLength(3);
  }, 30_000);

  it('loses nothing and leaves nothing unacknowledged: another instance takes over', async () => {
    const config: CrashChildConfig = {
      servers: NATS_URL,
      prefix: PREFIX,
      service: 'crash',
      topic: 'crash.work',
      ackWaitMs: 1_000,
      concurrency: 4,
      handlerMs: 15,
    };
    started = startChild(config);
    const { child, done, exited } = started;
    await Promise.race([
      started.ready,
      exited.then((how) => {
        throw new Error(`crash child exited (${how}) before READY: ${started?.output()}`);
      }),
    ]);

    const producer = new NatsBackend({ servers: NATS_URL, prefix: PREFIX });
    opened.push(producer);
    const ids = Array.from({ length: TOTAL }, (_, i) => `m${i}`);
    await Promise.all(
      ids.map((id) =>
        producer.publish(
          {
            topic: config.topic,
            body: Buffer.from(JSON.stringify({ id })),
            headers: {},
            messageId: id,
            contentType: 'application/json',
            timestamp: Date.now(),
          },
          { mandatory: true },
        ),
      ),
    );

    // Mid-load and mid-handler: some done, more pulled and running.
    await waitFor(() => done.size >= 40, { timeoutMs: 15_000, message: 'child handled 40' });
    process.kill(child.pid as number, 'SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const doneByChild = new Set(done);
    expect(doneByChild.size).toBeLessThan(TOTAL);

    const heir = new NatsBackend({ servers: NATS_URL, prefix: PREFIX, ackWaitMs: 1_000 });
    opened.push(heir);
    const handled = new Set<string>();
    const redelivered: string[] = [];
    await heir.subscribe(
      {
        service: config.service,
        queue: `${config.service}.${config.topic}`,
        topics: [config.topic],
        external: false,
        concurrency: 8,
      },
      async (delivery: Delivery) => {
        const { id } = JSON.parse(delivery.body.toString()) as { id: string };
        handled.add(id);
        if (delivery.redelivered) redelivered.push(id);
        return { action: 'ack' };
      },
    );

    const lost = (): string[] => ids.filter((id) => !handled.has(id) && !doneByChild.has(id));
    await waitFor(() => lost().length === 0, { timeoutMs: 15_000, message: 'every id handled' });
    // What the child had pulled and not acked came back after the ack wait, flagged.
    expect(redelivered.length).toBeGreaterThan(0);

    const { nc, jsm } = await natsAdmin();
    try {
      await waitFor(
        async () => {
          for await (const info of jsm.consumers.list(`${PREFIX}-messages`)) {
            if (info.num_ack_pending !== 0 || info.num_pending !== 0) return false;
          }
          return (await jsm.streams.info(`${PREFIX}-messages`)).state.messages === 0;
        },
        { timeoutMs: 10_000, message: 'no message pending or unacknowledged' },
      );
    } finally {
      await nc.close();
    }
  }, 60_000);
});
