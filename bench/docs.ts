/**
 * What a full run writes besides its log: docs/benchmarks.md and docs/benchmarks.svg, and the
 * headline table of README.md between its `<!-- bench:begin -->` and `<!-- bench:end -->` markers
 * (left alone, with a warning, when the markers are not there). Also the commit a run measures.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderSvg } from './chart';
import { ROOT } from './children';
import { readmeBlock, renderMarkdown, type Results } from './report';

/** The files a full run rewrites: their changes do not make the tree dirty for {@link commitOf}. */
const OUTPUTS = ['docs/benchmarks.md', 'docs/benchmarks.svg', 'README.md'];
const BEGIN = '<!-- bench:begin -->';
const END = '<!-- bench:end -->';

/**
 * `git rev-parse --short HEAD`, with `+dirty` when tracked files other than the run's own outputs
 * have uncommitted changes (what is measured is then not that commit); `unknown` outside git.
 */
export function commitOf(): string {
  const git = (...args: string[]): string =>
    execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const sha = git('rev-parse', '--short', 'HEAD').trim();
    const excluded = OUTPUTS.map((f) => `:(exclude)${f}`);
    const changed = git('status', '--porcelain', '--untracked-files=no', '--', '.', ...excluded);
    return changed.trim() === '' ? sha : `${sha}+dirty`;
  } catch {
    return 'unknown';
  }
}

/** Writes the report, the chart and the README's headline table; prints what it did. */
export function writeDocs(results: Results): void {
  mkdirSync(join(ROOT, 'docs'), { recursive: true });
  writeFileSync(join(ROOT, 'docs/benchmarks.svg'), renderSvg(results));
  writeFileSync(join(ROOT, 'docs/benchmarks.md'), renderMarkdown(results, 'benchmarks.svg'));
  console.log('wrote docs/benchmarks.md and docs/benchmarks.svg');
  const file = join(ROOT, 'README.md');
  const readme = readFileSync(file, 'utf8');
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin < 0 || end < begin) {
    console.log(`WARNING: README.md has no ${BEGIN} ... ${END} block: its figures were left alone`);
    return;
  }
  const block = `${BEGIN}\n${readmeBlock(results)}\n${END}`;
  writeFileSync(file, readme.slice(0, begin) + block + readme.slice(end + END.length));
  console.log('rewrote the headline table of README.md');
}
