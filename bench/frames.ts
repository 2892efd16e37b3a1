/**
 * Who a frame of a V8 profile (CPU or heap) belongs to, for the summaries of `npm run
 * bench:profile`: a package, a file of the library's build, or one of V8's own entries.
 */
import { fileURLToPath } from 'node:url';
import { ROOT } from './children';

/** The parts of a profile's call frame read here (the same in CPU and heap profiles). */
export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

const LIBRARY_DIST = '/libs/messaging/dist/';
const LIBRARY = 'nest-messaging/';

/** Which package a frame's code belongs to; the library's files by their path in its build. */
export function packageOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(program)' || functionName === '(root)') return 'V8 (program)';
    // Bindings and builtins (writeBuffer: a socket write, its syscall included).
    return 'native code';
  }
  if (url.startsWith('node:')) return 'node internals';
  const path = url.startsWith('file:') ? fileURLToPath(url) : url;
  const modules = path.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const [scope, name] = path.slice(modules + '/node_modules/'.length).split('/');
    if (scope === '@nestjs') return '@nestjs';
    if (scope === '@nats-io') return 'nats';
    return scope.startsWith('@') ? `${scope}/${name}` : scope;
  }
  const library = path.indexOf(LIBRARY_DIST);
  if (library >= 0) return `${LIBRARY}${path.slice(library + LIBRARY_DIST.length)}`;
  if (path.includes('/dist/bench/') || path.includes('/golevelup/dist/')) return 'the bench itself';
  return path;
}

/** {@link packageOf}, with the library's files as one package. */
export function groupOf(frame: CallFrame): string {
  const p = packageOf(frame);
  return p.startsWith(LIBRARY) ? 'nest-messaging' : p;
}

/** The library's file a package name of {@link packageOf} names, or undefined. */
export function libraryFile(packageName: string): string | undefined {
  return packageName.startsWith(LIBRARY) ? packageName.slice(LIBRARY.length) : undefined;
}

/** `package: function (file:line)`, the file relative to the repository. */
export function describeFrame(frame: CallFrame): string {
  const file = frame.url
    ? `${frame.url.replace(/^file:\/\//, '').replace(`${ROOT}/`, '')}:${frame.lineNumber + 1}`
    : '';
  return `${groupOf(frame)}: ${frame.functionName || '(anonymous)'}${file ? ` (${file})` : ''}`;
}

/** A key that tells functions apart: name, file and line. */
export function frameKey(frame: CallFrame): string {
  return `${frame.functionName}\u0000${frame.url}\u0000${frame.lineNumber}`;
}

/** What one function of a profile used by itself: µs of CPU, or bytes allocated. */
export interface SelfCost {
  readonly frame: CallFrame;
  amount: number;
}

/** How {@link costTables} prints an amount per message. */
export interface CostUnit {
  /** Column heading, e.g. `µs/msg`. */
  readonly heading: string;
  readonly digits: number;
  /** The whole the percentage is of (busy time, bytes allocated). */
  readonly whole: number;
  /** Heading of the percentage column, e.g. `% busy`. */
  readonly ofWhole: string;
  /** Heading of the table by package, e.g. `self time by package`. */
  readonly byPackage: string;
  /** How the function list is ranked, e.g. `by self time`. */
  readonly ranking: string;
}

const TOP = 25;

/**
 * The tables of a summary, as lines: the cost per message by package, the library's by file of its
 * build, and the top 25 functions by their own cost. Entries of V8's `(idle)` are left out.
 */
export function costTables(costs: readonly SelfCost[], messages: number, unit: CostUnit): string[] {
  const counted = costs.filter((c) => packageOf(c.frame) !== '(idle)');
  const perMsg = (amount: number): string => (amount / messages).toFixed(unit.digits).padStart(9);
  const pct = (amount: number): string =>
    `${((amount / Math.max(1, unit.whole)) * 100).toFixed(1)}%`.padStart(7);
  const sum = (group: (frame: CallFrame) => string): [string, number][] => {
    const totals = new Map<string, number>();
    for (const c of counted) {
      const g = group(c.frame);
      totals.set(g, (totals.get(g) ?? 0) + c.amount);
    }
    return [...totals].sort((a, b) => b[1] - a[1]);
  };
  const lines = [
    `${unit.byPackage.padEnd(33)}${unit.heading.padStart(6)} ${unit.ofWhole}`,
    ...sum(groupOf).map(([g, amount]) => `  ${g.padEnd(30)}${perMsg(amount)}${pct(amount)}`),
  ];
  const files = sum(packageOf).filter(([g]) => libraryFile(g) !== undefined);
  if (files.length > 0) {
    lines.push(
      '',
      'nest-messaging by file (its build)',
      ...files.map(
        ([g, amount]) => `  ${libraryFile(g)!.padEnd(48)}${perMsg(amount)}${pct(amount)}`,
      ),
    );
  }
  lines.push(
    '',
    `top ${TOP} functions ${unit.ranking}`,
    `${unit.heading.padStart(11)} ${unit.ofWhole.padStart(7)}  package: function (file:line)`,
  );
  const top = [...counted].sort((a, b) => b.amount - a.amount).slice(0, TOP);
  for (const c of top)
    lines.push(`  ${perMsg(c.amount)}${pct(c.amount)}  ${describeFrame(c.frame)}`);
  return lines;
}

/** Adds `amount` to the entry of `frame` in `costs` (keyed by {@link frameKey}). */
export function addCost(costs: Map<string, SelfCost>, frame: CallFrame, amount: number): void {
  const k = frameKey(frame);
  const entry = costs.get(k);
  if (entry) entry.amount += amount;
  else costs.set(k, { frame, amount });
}
