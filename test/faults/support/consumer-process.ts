/**
 * The test's handle on a consumer child process (consumer-child.ts): start it, wait until it
 * consumes, send it signals by its PID, await its exit. Its output is kept for failure messages.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import type { ConsumerConfig } from './consumer-child';

const ROOT = join(__dirname, '..', '..', '..');
const REGISTER = join(ROOT, 'scripts', 'faults-register.js');
const ENTRY = join(__dirname, 'consumer-child.ts');

export class ConsumerProcess {
  private output = '';
  private readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly config: ConsumerConfig) {
    this.child = spawn(process.execPath, ['-r', REGISTER, ENTRY, JSON.stringify(config)], {
      cwd: ROOT,
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
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`consumer ${this.pid} not READY after 60 s:\n${this.log}`)),
        60_000,
      );
      const onData = (chunk: Buffer) => {
        if (!chunk.toString('utf8').includes('READY')) return;
        clearTimeout(timer);
        this.child.stdout!.off('data', onData);
        resolve();
      };
      this.child.stdout!.on('data', onData);
      void this.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`consumer exited (${code ?? signal}) before READY:\n${this.log}`));
      });
    });
    this.ready.catch(() => undefined);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get log(): string {
    // eslint-disable-next-line no-control-regex
    return this.output.replace(/\x1b\[[0-9;]*m/g, '');
  }

  /** Sends `signal` to this process only (by its PID). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) process.kill(this.pid, signal);
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves with how it exited. */
  async stop(graceMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) {
      this.signal('SIGCONT'); // a stopped process cannot handle SIGTERM
      this.signal('SIGTERM');
      const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
      try {
        return await this.exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return this.exited;
  }
}
