/**
 * A `redis-server` of the test's own (Debian's, 7.0, built with TLS): its own port and its own data
 * directory in a temp folder, started, SIGKILLed and restarted by its PID, never the shared Redis.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PrivateRedis {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` (`rediss://` with `tls`). */
  readonly url: string;
  readonly dir: string;
  readonly pid: number | undefined;
  /** SIGKILLs the server (no shutdown, no last save) and waits for it to exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port, directory and arguments. */
  restart(): Promise<void>;
  /** Kills it and removes its directory. */
  remove(): Promise<void>;
}

/** A free TCP port of 127.0.0.1, as the OS hands one out. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `redis-server` with `args` (such as `['--appendonly', 'yes']`) after its port, directory
 * and no RDB save points; `tls` serves TLS only, on the port. Resolves once it accepts connections.
 */
export async function startPrivateRedis(
  args: readonly string[],
  { tls = false }: { tls?: boolean } = {},
): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'nest-messaging-redis-'));
  const ports = tls ? ['--port', '0', '--tls-port', String(port)] : ['--port', String(port)];
  const argv = [...ports, '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...args];
  let child: ChildProcess | undefined;
  const launch = async () => {
    child = await spawnReady(argv);
  };
  const kill = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    process.kill(running.pid as number, 'SIGKILL');
    await exited;
  };
  await launch();
  return {
    port,
    url: `${tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    dir,
    get pid() {
      return child?.pid;
    },
    kill,
    restart: launch,
    remove: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Spawns `redis-server` and resolves once its log says it accepts connections. */
function spawnReady(argv: readonly string[]): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-server', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const timer = setTimeout(() => fail(new Error('redis-server not ready within 10 s')), 10_000);
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (!/Ready to accept connections/.test(log)) return;
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stdout?.resume(); // drained from now on, unread
      child.off('exit', onExit);
      resolve(child);
    };
    const onExit = (code: number | null, signal: string | null) =>
      fail(new Error(`redis-server exited (${code ?? signal})`));
    const fail = (error: Error) => {
      clearTimeout(timer);
      if (child.exitCode === null) child.kill('SIGKILL');
      reject(new Error(`${error.message}\nredis-server ${argv.join(' ')}:\n${log}`));
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
    child.once('error', fail);
    child.once('exit', onExit);
  });
}
