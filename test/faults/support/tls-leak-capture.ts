/**
 * Everything an operator could see of a run, for the credential-leak checks of the TLS fault spec:
 * every Nest Logger line (a custom LoggerService, all levels, with its extra params inspected), every
 * `console.*` call and `process.stdout/stderr` write, and every error the spec collects (rendered
 * with `util.inspect`, so message, stack, `cause` chain and own properties all count). `leaks(secret)`
 * lists each distinct line holding the secret, raw or percent-encoded.
 */
import { inspect } from 'node:util';
import { Logger, type LoggerService } from '@nestjs/common';

type Level = 'log' | 'error' | 'warn' | 'debug' | 'verbose' | 'fatal';

function render(value: unknown): string {
  return typeof value === 'string' ? value : inspect(value, { depth: 10, breakLength: Infinity });
}

/** A Nest LoggerService that keeps every line. */
export class CapturingLogger implements LoggerService {
  readonly lines: string[] = [];

  private keep(level: Level, message: unknown, params: unknown[]): void {
    this.lines.push([level, render(message), ...params.map(render)].join(' '));
  }

  log(message: unknown, ...params: unknown[]): void {
    this.keep('log', message, params);
  }
  error(message: unknown, ...params: unknown[]): void {
    this.keep('error', message, params);
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.keep('warn', message, params);
  }
  debug(message: unknown, ...params: unknown[]): void {
    this.keep('debug', message, params);
  }
  verbose(message: unknown, ...params: unknown[]): void {
    this.keep('verbose', message, params);
  }
  fatal(message: unknown, ...params: unknown[]): void {
    this.keep('fatal', message, params);
  }
}

/** Captures logs, console output and errors from `install()` to `uninstall()`. */
export class LeakCapture {
  readonly logger = new CapturingLogger();
  private readonly output: string[] = [];
  private readonly errors: unknown[] = [];
  private readonly restores: Array<() => void> = [];

  install(): void {
    Logger.overrideLogger(this.logger);
    for (const method of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) {
      const spy = jest.spyOn(console, method).mockImplementation((...args: unknown[]) => {
        this.output.push(`console.${method} ${args.map(render).join(' ')}`);
      });
      this.restores.push(() => spy.mockRestore());
    }
    for (const stream of [process.stdout, process.stderr]) {
      const own = Object.getOwnPropertyDescriptor(stream, 'write');
      const original = stream.write.bind(stream) as (...args: unknown[]) => boolean;
      const keep = (chunk: unknown): void => {
        this.output.push(Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk));
      };
      stream.write = function write(chunk: unknown, ...rest: unknown[]): boolean {
        keep(chunk);
        return original(chunk, ...rest);
      };
      this.restores.push(() => {
        if (own) Object.defineProperty(stream, 'write', own);
        else delete (stream as { write?: unknown }).write;
      });
    }
  }

  uninstall(): void {
    for (const restore of this.restores.splice(0).reverse()) restore();
    Logger.overrideLogger(['warn', 'error']);
  }

  /** Keeps an error (or anything thrown) for the leak check. */
  error(error: unknown): void {
    this.errors.push(error);
  }

  /** Every captured text: log lines, console output, and each error rendered in full. */
  texts(): string[] {
    return [
      ...this.logger.lines,
      ...this.output,
      ...this.errors.flatMap((e) =>
        e instanceof Error ? [render(e), e.message, e.stack ?? ''] : [render(e)],
      ),
    ];
  }

  /**
   * Each distinct line of the captured texts that holds `secret`, raw, percent-encoded or by its
   * distinctive `marker` (one line per place, so a failure reads as a list of the leaks).
   */
  leaks(secret: string, marker = secret): string[] {
    const forms = [secret, encodeURIComponent(secret), marker];
    const lines = this.texts().flatMap((text) => text.split('\n'));
    return [...new Set(lines.filter((line) => forms.some((form) => line.includes(form))))];
  }

  /** Log lines whose text matches `pattern`. */
  logLines(pattern: RegExp): string[] {
    return this.logger.lines.filter((line) => pattern.test(line));
  }
}
