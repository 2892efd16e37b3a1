/**
 * A private `nats-server` for the NATS fault specs (`test/faults/nats-*.faults-spec.ts`): its own
 * port and its own JetStream store in a fresh temp folder, started by the spec and ended by its PID
 * (never the shared server on 4222). It can be stopped and started again on the same port and
 * store (a restart, or a crash with SIGKILL), and given extra configuration (TLS, users) as a config
 * file.
 *
 * | method            | what                                                                   |
 * | ----------------- | ---------------------------------------------------------------------- |
 * | `stop(signal)`    | SIGTERM (a clean shutdown) or SIGKILL (a crash); resolves once it exited |
 * | `start()`         | starts it again on the same port and store; resolves once it is ready  |
 * | `remove()`        | stops it (SIGKILL) and deletes its folder                              |
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './broker';

export interface PrivateNatsServer {
  readonly port: number;
  /** `nats://127.0.0.1:<port>` (`tls://` when the config asks for TLS). */
  readonly url: string;
  /** The temp folder of its store and config: a spec may write files (certificates) there. */
  readonly dir: string;
  /** The PID of the running server; undefined while stopped. */
  readonly pid: number | undefined;
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  start(): Promise<void>;
  remove(): Promise<void>;
}

export interface PrivateNatsServerOptions {
  /**
   * Lines added to the config file (`tls { … }`, `authorization { … }`); the port, the JetStream
   * store and the listen address are set by the fixture.
   */
  readonly config?: (dir: string) => string;
  /** Longest wait for the server to be ready. */
  readonly readyTimeoutMs?: number;
}

/** Starts a private JetStream server; `remove()` it in `afterAll`. */
export async function startNatsServer(
  options: PrivateNatsServerOptions = {},
): Promise<PrivateNatsServer> {
  const dir = mkdtempSync(join(tmpdir(), 'nest-messaging-nats-'));
  const port = await freePort();
  const extra = options.config?.(dir) ?? '';
  writeFileSync(
    join(dir, 'server.conf'),
    [
      'listen: 127.0.0.1:' + port,
      `jetstream { store_dir: ${JSON.stringify(join(dir, 'store'))} }`,
      extra,
      '',
    ].join('\n'),
  );
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = async (): Promise<void> => {
    if (child) throw new Error('the private nats-server runs already');
    const proc = spawn('nats-server', ['-c', join(dir, 'server.conf')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = proc;
    exited = new Promise<void>((resolve) =>
      proc.once('exit', () => {
        if (child === proc) child = undefined;
        resolve();
      }),
    );
    let log = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`private nats-server not ready in ${readyTimeoutMs} ms: ${log}`));
      }, readyTimeoutMs);
      proc.stderr?.on('data', (chunk: Buffer) => {
        log = (log + chunk.toString('utf8')).slice(-4_000);
        if (log.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`private nats-server exited (${signal ?? code}) before ready: ${log}`));
      });
    });
    // Read and dropped from now on, so that a full pipe never blocks the server.
    proc.stderr?.removeAllListeners('data');
    proc.stderr?.resume();
  };

  const stop = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> => {
    const running = child;
    if (!running?.pid) return;
    process.kill(running.pid, signal);
    await exited;
  };

  await start();
  return {
    port,
    url: `${/\btls\s*[{:]/.test(extra) ? 'tls' : 'nats'}://127.0.0.1:${port}`,
    dir,
    get pid() {
      return child?.pid;
    },
    start,
    stop,
    remove: async () => {
      await stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
