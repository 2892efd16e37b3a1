import type { CliIo } from './cli-io';

/** A {@link CliIo} that records lines, for specs that run `main()` in process. */
export interface CapturedIo {
  readonly io: CliIo;
  /** Lines written to stdout. */
  readonly out: string[];
  /** Lines written to stderr. */
  readonly err: string[];
  /** Everything written to stdout, as one text. */
  stdout(): string;
}

/**
 * Records what a command prints; `ask` answers confirmations and `progress` takes progress bars
 * (absent: no terminal).
 */
export function captureIo(extra: Pick<CliIo, 'ask' | 'progress'> = {}): CapturedIo {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { out: (line) => out.push(line), err: (line) => err.push(line), ...extra },
    out,
    err,
    stdout: () => out.join('\n'),
  };
}
