/**
 * Brokers of the fault suite (RELIABILITY.md §7.1):
 *
 * | function            | what                                                                          |
 * | ------------------- | ----------------------------------------------------------------------------- |
 * | `createVhost()`     | a private vhost on the shared broker, for connection-level faults; its       |
 * |                     | `closeConnections()` closes only that vhost's connections; `remove()` deletes it |
 * | `startRabbitNode()` | a private RabbitMQ node (own HOME, node name, ports, dirs) for broker-level   |
 * |                     | faults (stop_app, memory alarm, max_message_size); stopped by its PID         |
 * | `queueStats()`      | `list_queues` of a vhost as objects (messages, consumers)                     |
 *
 * The shared broker is never stopped, never reconfigured, and no connection outside our vhost is
 * touched. `rabbitmqctl` is called straight from /usr/lib/rabbitmq/bin for private nodes (the
 * /usr/sbin wrapper switches to the rabbitmq user and its cookie).
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const RABBIT_BIN = '/usr/lib/rabbitmq/bin';
export const SHARED_BROKER = { host: '127.0.0.1', port: 5672 };

export type Ctl = (args: string[]) => Promise<string>;

/** `rabbitmqctl` of the shared broker (its default node and cookie). */
export const sharedCtl: Ctl = async (args) =>
  (await exec('rabbitmqctl', args, { timeout: 60_000 })).stdout;

export interface Vhost {
  name: string;
  url: string;
  ctl: Ctl;
  /** Closes every connection of this vhost (and only those), as an operator would. */
  closeConnections(why: string): Promise<void>;
  remove(): Promise<void>;
}

export async function createVhost(
  prefix = 'faults',
  port = SHARED_BROKER.port,
  ctl: Ctl = sharedCtl,
): Promise<Vhost> {
  const name = `${prefix}-${randomUUID().slice(0, 8)}`;
  await ctl(['add_vhost', name]);
  await ctl(['set_permissions', '-p', name, 'guest', '.*', '.*', '.*']);
  return {
    name,
    url: vhostUrl(port, name),
    ctl,
    closeConnections: async (why) => {
      await ctl(['close_all_connections', '--vhost', name, '--limit', '1000', why]);
    },
    remove: async () => {
      await ctl(['delete_vhost', name]);
    },
  };
}

export function vhostUrl(port: number, vhost: string): string {
  return `amqp://guest:guest@127.0.0.1:${port}/${encodeURIComponent(vhost)}`;
}

export interface QueueStat {
  name: string;
  messages: number;
  consumers: number;
}

export async function queueStats(ctl: Ctl, vhost: string): Promise<QueueStat[]> {
  const out = await ctl([
    'list_queues',
    '-q',
    '-p',
    vhost,
    'name',
    'messages',
    'consumers',
    '--formatter',
    'json',
  ]);
  return JSON.parse(out || '[]') as QueueStat[];
}

export interface RabbitNodeOptions {
  /** Erlang node name without host, e.g. `faults-1a2b` (becomes `faults-1a2b@localhost`). */
  name: string;
  /** AMQP port on 127.0.0.1. */
  port: number;
  /** Erlang distribution port. */
  distPort: number;
  /** Extra `rabbitmq.conf` lines (`key = value`). */
  config?: Record<string, string | number>;
  /** Boot bound. @default 120000 */
  startTimeoutMs?: number;
}

export interface RabbitNode {
  url: string;
  node: string;
  /** PID of the node's Erlang VM (changes on `start()` after `crash()`). */
  pid: number;
  ctl: Ctl;
  /** SIGKILL of the node's VM (a broker crash); resolves once it is gone. */
  crash(): Promise<void>;
  /** Starts the node again on the same dirs (after `crash()`); resolves once it accepts commands. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a private RabbitMQ node (RELIABILITY.md §7.1) and resolves once it accepts commands.
 * Everything lives in a fresh temp dir; `crash()` SIGKILLs its VM and `start()` boots it again on
 * the same data (a broker crash); `stop()` stops the node by its PID file, then its PID (SIGKILL
 * after 30 s), and deletes the dir. Reusable by other suites (a cluster needs only
 * distinct names and ports per node plus `join_cluster`).
 */
export async function startRabbitNode(options: RabbitNodeOptions): Promise<RabbitNode> {
  const dir = mkdtempSync(join(tmpdir(), `${options.name}-`));
  for (const sub of ['home', 'mnesia', 'log']) mkdirSync(join(dir, sub));
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  const conf = {
    'listeners.tcp.default': `127.0.0.1:${options.port}`,
    loopback_users: 'none',
    ...options.config,
  };
  writeFileSync(
    join(dir, 'rabbitmq.conf'),
    Object.entries(conf)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n') + '\n',
  );
  const node = `${options.name}@localhost`;
  const pidFile = join(dir, 'rmq.pid');
  const env = {
    ...process.env,
    HOME: join(dir, 'home'),
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(options.port),
    RABBITMQ_DIST_PORT: String(options.distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_PID_FILE: pidFile,
  };
  const ctl: Ctl = async (args) =>
    (await exec(join(RABBIT_BIN, 'rabbitmqctl'), ['-n', node, ...args], { env, timeout: 120_000 }))
      .stdout;
  const timeout = Math.round((options.startTimeoutMs ?? 120_000) / 1000);
  const boot = async (): Promise<number> => {
    rmSync(pidFile, { force: true });
    await exec(join(RABBIT_BIN, 'rabbitmq-server'), ['-detached'], { env, timeout: 60_000 });
    try {
      await ctl(['wait', pidFile, '--timeout', String(timeout)]);
    } catch (error) {
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : undefined;
      if (pid) killQuietly(pid, 'SIGKILL');
      throw new Error(
        `private RabbitMQ node ${node} did not start within ${timeout} s (logs in ${dir}/log): ${String(error)}`,
        { cause: error },
      );
    }
    return Number(readFileSync(pidFile, 'utf8').trim());
  };
  const gone = async (pid: number, withinMs: number): Promise<void> => {
    const deadline = Date.now() + withinMs;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  };
  const handle: RabbitNode = {
    url: `amqp://guest:guest@127.0.0.1:${options.port}`,
    node,
    pid: await boot(),
    ctl,
    crash: async () => {
      killQuietly(handle.pid, 'SIGKILL');
      await gone(handle.pid, 10_000);
    },
    start: async () => {
      handle.pid = await boot();
    },
    stop: async () => {
      if (alive(handle.pid)) await ctl(['stop', pidFile]).catch(() => undefined);
      await gone(handle.pid, 30_000);
      if (alive(handle.pid)) killQuietly(handle.pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export { freePort } from '../../support/free-port';
