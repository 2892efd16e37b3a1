/**
 * Private Redis and NATS servers for the Redis and NATS fault scenarios: the shared servers on
 * 6379 and 4222 are never touched. Each server is a child process of the test, on a free loopback
 * port and a data folder of its own under a temp dir, found and ended by its PID only.
 *
 * | server | started as                                                                      | ready when            |
 * | ------ | ------------------------------------------------------------------------------- | --------------------- |
 * | Redis  | `redis-server --port P --bind 127.0.0.1 --dir D --appendonly yes --appendfsync always --save ''` | `PING` answers `+PONG` (not `-LOADING`) |
 * | NATS   | `nats-server -a 127.0.0.1 -p P -js -sd D -m M`                                  | `/healthz` on M says ok (JetStream recovered) |
 *
 * `crash()` is SIGKILL, `start()` starts it again on the same port and data: what was fsynced
 * (Redis's append-only file, JetStream's file store) is all that survives. A Redis may take more
 * arguments after those (the cluster nodes of redis-cluster.ts: `--cluster-enabled yes ...`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@app/messaging/testing';
import { freePort } from './broker';

/** How long `stop()` waits after SIGTERM before it sends SIGKILL. */
export const STOP_GRACE_MS = 10_000;

/** One private server process: its port, its data dir, its PID. */
export class PrivateServer {
  private child?: ChildProcess;
  private output = '';
  readonly dir: string;

  private constructor(
    readonly kind: 'redis' | 'nats',
    readonly port: number,
    private readonly monitorPort: number,
    private readonly extraArgs: readonly string[] = [],
  ) {
    this.dir = mkdtempSync(join(tmpdir(), `faults-${kind}-`));
  }

  /** A private Redis with `appendonly yes`, `appendfsync always` (every write on disk before the reply). */
  static async redis(extraArgs: readonly string[] = []): Promise<PrivateServer> {
    const server = new PrivateServer('redis', await freePort(), 0, extraArgs);
    await server.start();
    return server;
  }

  /** A private NATS with JetStream on a file store in its own folder. */
  static async nats(): Promise<PrivateServer> {
    const server = new PrivateServer('nats', await freePort(), await freePort());
    await server.start();
    return server;
  }

  get url(): string {
    return `${this.kind}://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the server (again) on its port and data dir; resolves once it serves. */
  async start(): Promise<void> {
    const [command, args] =
      this.kind === 'redis'
        ? ['redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir]]
        : ['nats-server', ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.dir]];
    if (this.kind === 'redis') {
      args.push('--appendonly', 'yes', '--appendfsync', 'always', '--save', '', ...this.extraArgs);
    } else {
      args.push('-m', String(this.monitorPort));
    }
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (chunk: Buffer) => (this.output = (this.output + String(chunk)).slice(-10_000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (error) => keep(Buffer.from(`spawn ${command}: ${error.message}\n`)));
    await waitFor(() => this.serving(), {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: `private ${this.kind} on ${this.port} serving (install ${command}?)\n${this.output}`,
    });
  }

  /** SIGKILL by PID; resolves once it exited. */
  async crash(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /**
   * Ends the server by its PID (SIGTERM, SIGKILL after {@link STOP_GRACE_MS}: a cluster master
   * waiting on replicas that are gone, say, must not hold up the suite) and removes its data dir.
   */
  async stop(): Promise<void> {
    await this.signal('SIGTERM', STOP_GRACE_MS);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async signal(signal: NodeJS.Signals, killAfterMs?: number): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(child.pid!, signal);
    const timer =
      killAfterMs === undefined
        ? undefined
        : setTimeout(() => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          }, killAfterMs);
    await exited;
    clearTimeout(timer);
  }

  private serving(): Promise<boolean> {
    if (!this.running) return Promise.resolve(false);
    return this.kind === 'redis' ? this.redisPong() : this.natsHealthy();
  }

  private redisPong(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = connect(this.port, '127.0.0.1');
      let reply = '';
      socket.setTimeout(1_000, () => socket.destroy());
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (chunk) => {
        reply += String(chunk);
        if (reply.includes('\r\n')) socket.end();
      });
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(reply.startsWith('+PONG')));
    });
  }

  private natsHealthy(): Promise<boolean> {
    return new Promise((resolve) => {
      const req = get(
        { host: '127.0.0.1', port: this.monitorPort, path: '/healthz', timeout: 1_000 },
        (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
    });
  }
}
