/**
 * What the build puts in the package (`tsconfig.lib.json`: every file of `src/` it does not exclude)
 * is the library and nothing of its tests. Each compiled file must be an entry point of
 * `package.json` (`exports`, `bin`) or be imported, `import type` and lazy `require()` included, by
 * another compiled file. A helper of a spec, or a test's child process (a file a spec runs as a
 * process of its own, which nothing imports), that is not named `*.spec.ts` or `*.fixture.ts` would
 * ship: it fails here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import * as ts from 'typescript';

const LIB = resolve(__dirname, '..');

/** The source files `npm run build:lib` compiles, relative to `src/`. */
function compiledFiles(): string[] {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    join(LIB, 'tsconfig.lib.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
      },
    },
  );
  if (!parsed) throw new Error('cannot read libs/messaging/tsconfig.lib.json');
  return parsed.fileNames.map((file) => relative(join(LIB, 'src'), file));
}

/** The sources of the package's entry points: `exports` and `bin` of its package.json. */
function entryPoints(): string[] {
  const pkg = JSON.parse(readFileSync(join(LIB, 'package.json'), 'utf8')) as {
    exports: Record<string, string | { default: string }>;
    bin: Record<string, string>;
  };
  const targets = [
    ...Object.values(pkg.exports).map((target) =>
      typeof target === 'string' ? target : target.default,
    ),
    ...Object.values(pkg.bin).map(binTarget),
  ];
  return targets
    .filter((target) => target.startsWith('./dist/'))
    .map((target) => target.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts'));
}

/** What a bin runs: itself if built from `src/`, else the `dist/` file its shim in `bin/` loads. */
function binTarget(bin: string): string {
  if (bin.startsWith('./dist/')) return bin;
  const loaded = /join\(__dirname, '\.\.', ((?:'[^']+'(?:, )?)+)\)/.exec(
    readFileSync(join(LIB, bin), 'utf8'),
  );
  if (!loaded) throw new Error(`${bin}: no dist/ file found that it loads`);
  return `./${loaded[1]
    .split(', ')
    .map((part) => part.slice(1, -1))
    .join('/')}`;
}

/** The files of `src/` that `file` (relative to `src/`) imports, requires or imports the types of. */
function importsOf(file: string): string[] {
  const path = join(LIB, 'src', file);
  const { importedFiles } = ts.preProcessFile(readFileSync(path, 'utf8'), true, true);
  return importedFiles
    .map(({ fileName }) => fileName)
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) => resolve(dirname(path), specifier))
    .flatMap((base) => [`${base}.ts`, join(base, 'index.ts')].filter((f) => existsSync(f)))
    .map((found) => relative(join(LIB, 'src'), found));
}

describe('the files the package ships', () => {
  it('are the entry points and what they import, never a file only tests use', () => {
    const compiled = new Set(compiledFiles());
    const reached = new Set<string>();
    const pending = entryPoints();
    for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
      if (reached.has(file) || !compiled.has(file)) continue;
      reached.add(file);
      pending.push(...importsOf(file));
    }
    expect(reached.size).toBeGreaterThan(100);
    // A file listed here ships though no entry point reaches it: if only tests use it, name it
    // `*.fixture.ts` (or `*.spec.ts`), which tsconfig.lib.json excludes from the build.
    expect([...compiled].filter((file) => !reached.has(file)).sort()).toEqual([]);
  });

  it('exclude specs and fixtures from the build', () => {
    const test = compiledFiles().filter((file) => /\.(spec|fixture)\.ts$/.test(file));
    expect(test).toEqual([]);
  });
});
