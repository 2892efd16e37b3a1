/**
 * A 3-node RabbitMQ cluster on this machine for the cluster scenarios (cluster.faults-spec.ts),
 * built on the private-node recipe of RELIABILITY.md §7.1, plus an in-process consumer that is given
 * every node's URL:
 *
 * | export                      | what                                                                  |
 * | --------------------------- | --------------------------------------------------------------------- |
 * | `startRabbitCluster()`      | N nodes (own names, AMQP and dist ports, mnesia/log dirs; one shared  |
 * |                             | HOME whose `.erlang.cookie` they and the CLI use), joined to node 1   |
 * | `cluster.connectionNodes()` | the nodes named client connections are on (`list_connections port     |
 * |                             | client_properties`, by `connection_name`; the port tells the node)     |
 * | `cluster.queue()`           | a queue's `leader`, `members`, `online` and `consumers`               |
 * | `cluster.kill()`            | SIGKILL of a node's beam (PID from its pid file, checked to be ours)  |
 * | `cluster.restart()`         | boots a killed node again on its own data dir; it rejoins by itself   |
 * | `cluster.stop()`            | stops every node by its PID (SIGKILL after 30 s) and deletes the dirs |
 * | `ClusterConsumer`           | a consumer Nest app in the test process with `urls: [...]` (failover) |
 *
 * Why an in-process consumer: the suite's consumer child (consumer-child.ts) takes one `url`, and
 * a consumer pinned to the node that is killed cannot fail over, which is what is under test here.
 * It does what the child does (a sleep, then a fsync'ed `handled` row, then return: ack after row).
 *
 * The shared broker (rabbit@<host>, 5672) is never touched: node names carry the test's PID and
 * ports are handed out by the OS. Only PIDs read from our own pid files are ever signalled.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Controller, type INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  AmqpBackend,
  Consume,
  MessageContext,
  MessagingModule,
  MessagingServer,
} from '@app/messaging';
import { waitFor } from '@app/messaging/testing';
import { freePort } from './broker';
import { ChildLedgerWriter } from './ledger';

const exec = promisify(execFile);
const RABBIT_BIN = '/usr/lib/rabbitmq/bin';

export interface ClusterNode {
  /** Erlang node name, `<prefix><i>@localhost`. */
  node: string;
  port: number;
  distPort: number;
  url: string;
  /** PID of the node's beam.smp while it runs. */
  pid?: number;
}

export interface QueueInfo {
  name: string;
  leader: string;
  members: string[];
  online: string[];
  consumers: number;
}

export interface RabbitCluster {
  readonly nodes: readonly ClusterNode[];
  /** AMQP URLs of the nodes, node 1 first. */
  readonly urls: readonly string[];
  /** The nodes' URLs starting with `node`'s, then the others in order (the client's failover list). */
  urlsFrom(node: string): string[];
  nodeOf(node: string): ClusterNode;
  /** `rabbitmqctl -n <node> ...` (default: the first node not killed). */
  ctl(args: string[], node?: string): Promise<string>;
  /** Nodes on which connections named `connectionName` are open (cluster-wide view), each once. */
  connectionNodes(connectionName: string): Promise<string[]>;
  /**
   * The live consumers of a queue, each with the client-provided name and node of its connection:
   * `list_consumers` joined with `list_channels` and `list_connections` on one node. A consumer
   * whose node died is left out (a quorum queue keeps counting it, as `suspected_down`, until that
   * node is back, so the queue's own `consumers` figure cannot tell).
   */
  consumersOf(queue: string): Promise<Array<{ connectionName: string; node: string }>>;
  /** `list_queues` of one queue in vhost `/`; throws when it is not there. */
  queue(name: string): Promise<QueueInfo>;
  /** SIGKILL of the node's beam process; resolves with the kill time once the process is gone. */
  kill(node: string): Promise<number>;
  /** Boots a killed node again (same name, ports, data); resolves once its app runs. */
  restart(node: string): Promise<void>;
  /** Restarts every node killed and not restarted yet. */
  restartKilled(): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Node names are `<prefix><i>@localhost`, i = 1..size. */
  prefix: string;
  /** @default 3 */
  size?: number;
  /** Bound of one node's boot. @default 120000 */
  startTimeoutMs?: number;
}

/**
 * Starts `size` private nodes at once (RELIABILITY.md §7.1 each), joins nodes 2..N to node 1
 * (`stop_app`, `join_cluster`, `start_app`) and checks that every node runs in the cluster. On any
 * failure the nodes started so far are killed and the dir deleted before the error is thrown.
 */
export async function startRabbitCluster(options: ClusterOptions): Promise<RabbitCluster> {
  const size = options.size ?? 3;
  const timeoutS = Math.round((options.startTimeoutMs ?? 120_000) / 1000);
  const dir = mkdtempSync(join(tmpdir(), `${options.prefix}-`));
  const home = join(dir, 'home');
  mkdirSync(home);
  // One cookie for every node and every CLI call: they find it in the shared HOME.
  writeFileSync(join(home, '.erlang.cookie'), randomBytes(24).toString('hex'), { mode: 0o400 });
  const nodes: ClusterNode[] = [];
  for (let i = 1; i <= size; i++) {
    const [port, distPort] = [await freePort(), await freePort()];
    nodes.push({
      node: `${options.prefix}${i}@localhost`,
      port,
      distPort,
      url: `amqp://guest:guest@127.0.0.1:${port}`,
    });
  }
  const nodeDir = (n: ClusterNode) => join(dir, n.node.split('@')[0]);
  const pidFile = (n: ClusterNode) => join(nodeDir(n), 'rmq.pid');
  const ctlEnv = { ...process.env, HOME: home };
  const nodeEnv = (n: ClusterNode) => ({
    ...ctlEnv,
    RABBITMQ_NODENAME: n.node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(n.port),
    RABBITMQ_DIST_PORT: String(n.distPort),
    RABBITMQ_MNESIA_BASE: join(nodeDir(n), 'mnesia'),
    RABBITMQ_LOG_BASE: join(nodeDir(n), 'log'),
    RABBITMQ_CONFIG_FILE: join(nodeDir(n), 'rabbitmq.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(nodeDir(n), 'enabled_plugins'),
    RABBITMQ_PID_FILE: pidFile(n),
  });
  const killed = new Set<string>();
  const nodeOf = (name: string): ClusterNode => {
    const found = nodes.find((n) => n.node === name);
    if (!found)
      throw new Error(`no node ${name} in this cluster (${nodes.map((n) => n.node).join(', ')})`);
    return found;
  };
  const ctl = async (args: string[], node?: string): Promise<string> => {
    const target = node ?? nodes.find((n) => !killed.has(n.node))?.node;
    if (!target) throw new Error('every node of the cluster is down: restart() one first');
    const { stdout } = await exec(join(RABBIT_BIN, 'rabbitmqctl'), ['-n', target, ...args], {
      env: ctlEnv,
      timeout: 60_000,
    });
    return stdout;
  };

  const boot = async (n: ClusterNode): Promise<void> => {
    rmSync(pidFile(n), { force: true }); // a killed node's stale file would satisfy `wait` at once
    await exec(join(RABBIT_BIN, 'rabbitmq-server'), ['-detached'], {
      env: nodeEnv(n),
      timeout: 60_000,
    });
    try {
      await ctl(['wait', pidFile(n), '--timeout', String(timeoutS)], n.node);
    } catch (error) {
      throw new Error(
        `cluster node ${n.node} did not start within ${timeoutS} s (logs in ${nodeDir(n)}/log): ${String(error)}\n${logTail(join(nodeDir(n), 'log'))}`,
        { cause: error },
      );
    } finally {
      if (existsSync(pidFile(n))) n.pid = Number(readFileSync(pidFile(n), 'utf8').trim());
    }
    killed.delete(n.node);
  };

  const hardKill = async (n: ClusterNode): Promise<void> => {
    const pid = n.pid;
    if (!pid || !isOurBeam(pid, n.node)) return;
    process.kill(pid, 'SIGKILL');
    await waitFor(() => !alive(pid), {
      timeoutMs: 10_000,
      intervalMs: 20,
      message: `beam ${pid} of ${n.node} gone after SIGKILL`,
    });
  };

  const stop = async (): Promise<void> => {
    await Promise.all(
      nodes.map(async (n) => {
        if (n.pid && alive(n.pid)) {
          await ctl(['stop', pidFile(n)], n.node).catch(() => undefined);
          const deadline = Date.now() + 30_000;
          while (n.pid && alive(n.pid) && Date.now() < deadline) await sleep(200);
          await hardKill(n).catch(() => undefined);
        }
      }),
    );
    // The nodes' logs stay for a post-mortem only when asked for, like the ledger.
    if (process.env.FAULTS_KEEP_LEDGER) process.stdout.write(`[faults] cluster dir kept: ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  };

  const prepare = (n: ClusterNode): void => {
    rmSync(nodeDir(n), { recursive: true, force: true });
    mkdirSync(join(nodeDir(n), 'mnesia'), { recursive: true });
    mkdirSync(join(nodeDir(n), 'log'));
    writeFileSync(join(nodeDir(n), 'enabled_plugins'), '[].\n');
    writeFileSync(
      join(nodeDir(n), 'rabbitmq.conf'),
      `listeners.tcp.default = 127.0.0.1:${n.port}\nloopback_users = none\n`,
    );
  };
  // A first boot that fails is tried once more on new ports and a clean dir: on a machine this busy
  // a port can still be taken between freePort() and the node's bind. The error of the second try,
  // with the tail of the node's log, is the one thrown.
  const firstBoot = async (n: ClusterNode): Promise<void> => {
    prepare(n);
    try {
      await boot(n);
    } catch (error) {
      process.stdout.write(
        `[faults] ${String(error)}\n[faults] booting ${n.node} again on new ports\n`,
      );
      await hardKill(n).catch(() => undefined);
      [n.port, n.distPort] = [await freePort(), await freePort()];
      n.url = `amqp://guest:guest@127.0.0.1:${n.port}`;
      prepare(n);
      await boot(n);
    }
  };

  try {
    await Promise.all(nodes.map(firstBoot));
    for (const n of nodes.slice(1)) {
      await ctl(['stop_app'], n.node);
      await ctl(['join_cluster', nodes[0].node], n.node);
      await ctl(['start_app'], n.node);
    }
    const status = JSON.parse(await ctl(['cluster_status', '--formatter', 'json'])) as {
      running_nodes: string[];
    };
    const missing = nodes.filter((n) => !status.running_nodes.includes(n.node));
    if (missing.length) {
      throw new Error(
        `cluster of ${size} formed without ${missing.map((n) => n.node).join(', ')} (running: ${status.running_nodes.join(', ')}); logs in ${dir}/*/log`,
      );
    }
  } catch (error) {
    await Promise.all(nodes.map((n) => hardKill(n).catch(() => undefined)));
    if (!process.env.FAULTS_KEEP_LEDGER) rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  return {
    nodes,
    urls: nodes.map((n) => n.url),
    urlsFrom: (node) => {
      const i = nodes.indexOf(nodeOf(node));
      return [...nodes.slice(i), ...nodes.slice(0, i)].map((n) => n.url);
    },
    nodeOf,
    ctl,
    connectionNodes: async (connectionName) => {
      const rows = JSON.parse(
        (await ctl([
          'list_connections',
          '-q',
          'port',
          'client_properties',
          '--formatter',
          'json',
        ])) || '[]',
      ) as Array<{ port: number; client_properties: Array<[string, string, unknown]> }>;
      // A backend that subscribes has two connections of that name (publishing, consuming).
      const named = rows
        .filter((row) =>
          row.client_properties.some(([k, , v]) => k === 'connection_name' && v === connectionName),
        )
        .map((row) => nodes.find((n) => n.port === row.port)?.node ?? `port ${row.port}`);
      return [...new Set(named)];
    },
    consumersOf: async (queue) => {
      const target = nodes.find((n) => !killed.has(n.node))?.node;
      const list = async <T>(args: string[]): Promise<T[]> =>
        JSON.parse((await ctl([...args, '-q', '--formatter', 'json'], target)) || '[]') as T[];
      const consumers = await list<{ queue_name: string; channel_pid: string }>([
        'list_consumers',
        'queue_name',
        'channel_pid',
      ]);
      const channels = await list<{ pid: string; connection: string }>([
        'list_channels',
        'pid',
        'connection',
      ]);
      const connections = await list<{
        pid: string;
        port: number;
        client_properties: Array<[string, string, unknown]>;
      }>(['list_connections', 'pid', 'port', 'client_properties']);
      const out: Array<{ connectionName: string; node: string }> = [];
      for (const c of consumers.filter((x) => x.queue_name === queue)) {
        const channel = channels.find((ch) => ch.pid === c.channel_pid);
        const conn = connections.find((x) => x.pid === channel?.connection);
        if (!conn) continue;
        const name = conn.client_properties.find(([k]) => k === 'connection_name')?.[2];
        out.push({
          connectionName: typeof name === 'string' ? name : '',
          node: nodes.find((n) => n.port === conn.port)?.node ?? `port ${conn.port}`,
        });
      }
      return out;
    },
    queue: async (name) => {
      const rows = JSON.parse(
        (await ctl([
          'list_queues',
          '-q',
          'name',
          'leader',
          'members',
          'online',
          'consumers',
          '--formatter',
          'json',
        ])) || '[]',
      ) as QueueInfo[];
      const found = rows.find((q) => q.name === name);
      if (!found) throw new Error(`queue ${name} not found in vhost / of the cluster`);
      return found;
    },
    kill: async (node) => {
      const n = nodeOf(node);
      if (!n.pid || !isOurBeam(n.pid, n.node)) {
        throw new Error(
          `${node} has no running beam of ours (pid ${n.pid}): start or restart it first`,
        );
      }
      killed.add(n.node);
      const at = Date.now();
      await hardKill(n);
      n.pid = undefined;
      return at;
    },
    restart: (node) => boot(nodeOf(node)),
    restartKilled: async () => {
      for (const n of nodes.filter((x) => killed.has(x.node))) await boot(n);
    },
    stop,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The PID is a running beam started for `node` (guards against a reused PID): a beam.smp whose
 * environment names the node (RabbitMQ reads its node name from there; it is not on the command line).
 */
function isOurBeam(pid: number, node: string): boolean {
  try {
    const exe = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    return exe.endsWith('beam.smp') && environ.includes(`RABBITMQ_NODENAME=${node}`);
  } catch {
    return false;
  }
}

export interface ClusterConsumerOptions {
  /** Failover list given to the backend, tried in order on every (re)connection. */
  urls: string[];
  service: string;
  topic: string;
  ledgerDir: string;
  /** Shown in `list_connections`, to find the node this consumer is on. */
  connectionName: string;
  /** @default 10 */
  concurrency?: number;
  /** Handler work time, uniformly in [min, max] ms. @default [5, 50] */
  handlerMs?: [number, number];
}

/**
 * A consumer service in the test process: `MessagingModule.forRoot` on an `AmqpBackend` with `urls`,
 * one `@Consume(topic)` handler that sleeps, writes its fsync'ed `handled` row, then returns (the ack
 * follows the row). Its backend's `error` events go to the ledger as `backend-error` rows.
 */
export class ClusterConsumer {
  private constructor(
    private readonly app: INestApplication,
    private readonly ledger: ChildLedgerWriter,
  ) {}

  static async start(options: ClusterConsumerOptions): Promise<ClusterConsumer> {
    const ledger = new ChildLedgerWriter(options.ledgerDir);
    const [min, max] = options.handlerMs ?? [5, 50];
    const pid = process.pid;
    const backend = new AmqpBackend({
      urls: options.urls,
      connectionName: options.connectionName,
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2 },
    });
    backend.on('error', (error) =>
      ledger.write({
        kind: 'backend-error',
        pid,
        error: `${options.connectionName}: ${String(error?.message ?? error)}`,
        at: Date.now(),
      }),
    );

    @Controller()
    class ClusterWorker {
      @Consume(options.topic, {
        concurrency: options.concurrency ?? 10,
        retry: { maxAttempts: 3, backoff: { initialDelayMs: 100, multiplier: 1, jitter: 0 } },
      })
      async handle(@Payload() body: unknown, @Ctx() ctx: MessageContext): Promise<void> {
        // A volatile request of the scenario's own, not one of the load (see askOnce).
        if ((body as { probe?: boolean } | null)?.probe === true) return;
        await sleep(min + Math.random() * (max - min));
        ledger.write({
          kind: 'handled',
          id: ctx.messageId,
          seq: (body as { seq?: number } | null)?.seq,
          attempt: ctx.attempt,
          redelivered: ctx.redelivered,
          pid,
          at: Date.now(),
        });
      }
    }

    @Module({
      imports: [MessagingModule.forRoot({ service: options.service, backend })],
      controllers: [ClusterWorker],
    })
    class ClusterConsumerModule {}

    const app = await NestFactory.create(ClusterConsumerModule, { logger: ['error', 'warn'] });
    try {
      app.connectMicroservice({ strategy: app.get(MessagingServer) }, { inheritAppConfig: true });
      await app.startAllMicroservices();
      await app.init();
    } catch (error) {
      await app.close().catch(() => undefined);
      ledger.close();
      throw error;
    }
    return new ClusterConsumer(app, ledger);
  }

  /** Closes the app (the library drains its handlers and acks) and the ledger file. */
  async close(): Promise<void> {
    try {
      await this.app.close();
    } finally {
      this.ledger.close();
    }
  }
}

/** The last lines of a node's log files, for an error that says why it did not start. */
function logTail(logDir: string, lines = 25): string {
  try {
    return readdirSync(logDir)
      .filter((f) => f.endsWith('.log'))
      .map((f) => {
        const text = readFileSync(join(logDir, f), 'utf8').trimEnd().split('\n');
        return `--- ${f} (last ${Math.min(lines, text.length)} lines)\n${text.slice(-lines).join('\n')}`;
      })
      .join('\n');
  } catch (error) {
    return `(no log: ${String(error)})`;
  }
}
