/**
 * Where each scenario's verdict line goes besides Jest's output: `dist/faults/results.jsonl`
 * (generated, not committed), from which docs/reliability.md's table of the latest run is copied.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { CheckReport } from './checker';
import { summarize } from './checker';

const DIR = join(__dirname, '..', '..', '..', 'dist', 'faults');

export function recordResult(
  scenario: string,
  report: CheckReport,
  extra: Record<string, unknown> = {},
): void {
  mkdirSync(DIR, { recursive: true });
  const line = { scenario, at: new Date().toISOString(), summary: summarize(report), ...extra };
  appendFileSync(join(DIR, 'results.jsonl'), `${JSON.stringify(line)}\n`);
  process.stdout.write(
    `[faults] ${scenario}: ${line.summary}${Object.keys(extra).length ? ` ${JSON.stringify(extra)}` : ''}\n`,
  );
}
