import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from '@app/messaging/testing';

const ROOT = join(__dirname, '..', '..');

/** Entry point of a built app: `nest build <app>` keeps the monorepo layout under the app's outDir. */
export function builtMain(app: 'order-service' | 'payment-service'): string {
  return join(ROOT, 'dist', 'apps', app, 'apps', app, 'src', 'main.js');
}

function newestSourceTime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceTime(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/** Builds `app` with the Nest CLI unless its output is newer than its sources and the library's. */
export async function ensureBuilt(app: 'order-service' | 'payment-service'): Promise<void> {
  const main = builtMain(app);
  const sources = Math.max(
    newestSourceTime(join(ROOT, 'apps', app, 'src')),
    newestSourceTime(join(ROOT, 'libs', 'messaging', 'src')),
  );
  if (existsSync(main) && statSync(main).mtimeMs > sources) return;
  await promisify(execFile)('npx', ['nest', 'build', app], { cwd: ROOT, timeout: 120_000 });
}

export { freePort } from './free-port';

/** A service running as its own OS process, with its output kept for failure messages. */
export class ServiceProcess {
  private output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  constructor(
    readonly name: string,
    main: string,
    env: Record<string, string>,
    /** Options of node before `main`, e.g. `['-r', register]` to run TypeScript sources. */
    nodeArgs: string[] = [],
  ) {
    this.child = spawn(process.execPath, [...nodeArgs, main], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString('utf8')).slice(-20_000);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last 20 kB of its stdout and stderr, ANSI colours removed. */
  get log(): string {
    // eslint-disable-next-line no-control-regex
    return this.output.replace(/\x1b\[[0-9;]*m/g, '');
  }

  /**
   * Resolves once `url` answers with `status`; fails with this process's log when it exited first or
   * did not answer within `timeoutMs`.
   */
  async answers(url: string, status: number, timeoutMs = 20_000): Promise<void> {
    await waitFor(
      async () => {
        if (!this.running) throw new Error(`${this.name} exited during start-up:\n${this.log}`);
        return (await fetch(url).catch(() => undefined))?.status === status;
      },
      { timeoutMs, intervalMs: 50, message: `${this.name} to answer ${url}\n${this.log}` },
    );
  }

  /** Sends `signal` to this process (by its PID) and resolves once it exited. */
  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stopWithin(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      await this.stop('SIGTERM');
    } finally {
      clearTimeout(timer);
    }
  }
}
