import { createInterface } from 'node:readline/promises';
import { MessagingError } from '../errors/messaging.errors';

/**
 * Where the command line reads and writes: the terminal in `nest-messaging`, captured lines in
 * tests. Everything a command prints goes through it, so a command is a function of its arguments.
 */
export interface CliIo {
  /** Writes one line to standard output: results (tables, JSON). */
  out(line: string): void;
  /** Writes one line to standard error: errors, warnings, refusals. */
  err(line: string): void;
  /**
   * Asks a person a question and resolves with the line typed. Absent when nobody can answer
   * (standard input is not a terminal): commands that need a confirmation then refuse.
   */
  readonly ask?: (question: string) => Promise<string>;
  /** A terminal to draw progress bars on; absent when standard output is not a terminal. */
  readonly progress?: NodeJS.WritableStream;
}

/** What a command of the program runs with. */
export interface CommandContext {
  readonly io: CliIo;
  readonly env: NodeJS.ProcessEnv;
  /** Records the exit code of the command that ran. */
  exit(code: number): void;
}

/** A command line that cannot work as given (a bad option, a missing confirmation): exit code 2. */
export class CliUsageError extends MessagingError {
  readonly code = 'CLI_USAGE';
}

/** Exit codes of `nest-messaging`. */
export const EXIT = {
  /** Done. */
  ok: 0,
  /** Could not be done: the broker or database failed, a dead letter was not found or not replayed. */
  failure: 1,
  /** The command line is wrong: nothing was attempted. */
  usage: 2,
} as const;

/** The process's terminal: stdout and stderr, questions on stdin when it is a terminal. */
export function processIo(): CliIo {
  return {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    ask: process.stdin.isTTY ? askOnTerminal : undefined,
    progress: process.stdout.isTTY ? process.stdout : undefined,
  };
}

/** Asks on the terminal; the question goes to stderr so that stdout keeps only results. */
async function askOnTerminal(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await rl.question(question);
  } finally {
    rl.close();
  }
}
