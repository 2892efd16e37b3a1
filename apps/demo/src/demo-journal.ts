import type { LoggerService } from '@nestjs/common';

const UUID = /([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
const LABELS: Record<string, string> = {
  OrderService: 'orders',
  PaymentService: 'payments',
  Messaging: 'messaging',
};
const RETRY = /^\S+ message \S+ \(attempt (\d+)\) failed: .*; retrying in (\d+) ms$/;
const DEAD_LETTER = /^\S+ message \S+ \(attempt (\d+)\) dead-lettered \(([^)]+)\): (.*)$/;
const ROUTE = /^(\S+) <- (.*)$/;

/**
 * The demo's Nest logger: prints the services' own lines and the library's retry and dead-letter
 * lines as one readable journey (time since the current step, who said it, short ids), and hides
 * everything else: Nest's start-up lines, and the stack traces Nest's RPC exception handler logs for
 * each failed attempt (the services already say what failed).
 */
export class DemoJournal implements LoggerService {
  private since = Date.now();

  /** Restarts the clock shown in front of each line. */
  mark(): void {
    this.since = Date.now();
  }

  /** Prints a line of the demo itself. */
  say(text = ''): void {
    process.stdout.write(`${text}\n`);
  }

  log(message: unknown, context?: string): void {
    this.write('log', message, context);
  }

  warn(message: unknown, context?: string): void {
    this.write('warn', message, context);
  }

  error(message: unknown, ...rest: unknown[]): void {
    const context = typeof rest.at(-1) === 'string' ? (rest.at(-1) as string) : undefined;
    this.write('error', message, context);
  }

  debug(): void {}

  verbose(): void {}

  private write(
    level: 'log' | 'warn' | 'error',
    message: unknown,
    context: string | undefined,
  ): void {
    const label = context ? LABELS[context] : undefined;
    if (!label) return;
    const text = shorten(String(message));
    if (context === 'Messaging') {
      const line = this.describeLibraryLine(level, text);
      if (line) this.line(label, line);
      return;
    }
    this.line(label, level === 'warn' ? `! ${text}` : text);
  }

  /** The library's lines that tell the journey, in the demo's words; start-up routes once. */
  private describeLibraryLine(level: string, text: string): string | undefined {
    const retry = RETRY.exec(text);
    if (retry)
      return `↻ attempt ${retry[1]} failed; the broker holds it for ${retry[2]} ms, then attempt ${Number(retry[1]) + 1}`;
    const dead = DEAD_LETTER.exec(text);
    if (dead) return `☠ dead-lettered after ${dead[1]} attempt(s) (${dead[2]}): ${dead[3]}`;
    const route = ROUTE.exec(text);
    if (route) return `route ${route[1]} <- ${route[2].replace(/ \(.*$/, '')}`;
    if (text.startsWith('Replayed')) return `⟲ ${text}`;
    return level === 'log' ? undefined : text;
  }

  private line(label: string, text: string): void {
    const elapsed = ((Date.now() - this.since) / 1000).toFixed(3);
    process.stdout.write(`  +${elapsed}s  ${label.padEnd(9)} ${text}\n`);
  }
}

/** A UUID as its first 8 characters, which is unique enough for a demo. */
export function shorten(text: string): string {
  return text.replace(UUID, '$1');
}
