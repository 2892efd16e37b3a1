/**
 * Every TypeScript sample in `docs/**\/*.md` compiles.
 *
 * Each fenced block whose language (the first word of its info string) is `ts` or `typescript` is
 * type-checked as a module of its own (an `export {}` is appended, so two blocks never share a scope), with the root
 * tsconfig.json's options and the package's public names (`nest-messaging`, `nest-messaging/amqp`,
 * ...) mapped to the library's sources, as a user's app would import them. Nothing is written to
 * disk: the blocks are virtual files `docs/<page>.md.<n>.ts` next to the pages, so that module
 * resolution finds the repository's node_modules, and all of them go into ONE program.
 *
 * `nocompile`: a block whose info string also holds the word `nocompile` (```ts nocompile) is not
 * compiled. The migration guides mark the code of other libraries that way (their packages are not
 * installed here); everything written against this library compiles.
 *
 * Files of one app: a block whose first line is a comment naming a file (`// src/app.module.ts`) is
 * that file, `docs/<page>.md.files/src/app.module.ts`, so the other blocks of the page import it as an
 * app's files import each other (`import { AppModule } from './app.module'`).
 *
 * A failure reads `docs/<page>.md:<line>: TS<code>: <message>`, the line being the page's line.
 *
 * The entry points are listed in one table, in libs/messaging/README.md (checked against the
 * `exports` map by libs/messaging/src/entry-points.spec.ts); the pages here and the root README link
 * to it instead of repeating it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import * as ts from 'typescript';

const ROOT = resolve(__dirname, '..');
const DOCS = join(ROOT, 'docs');

/** The package's public entry points (libs/messaging/package.json `exports`), as source. */
const PUBLIC_NAMES: Record<string, string> = {
  'nest-messaging': 'libs/messaging/src/index.ts',
  'nest-messaging/amqp': 'libs/messaging/src/backends/amqp/index.ts',
  'nest-messaging/memory': 'libs/messaging/src/backends/memory/index.ts',
  'nest-messaging/redis': 'libs/messaging/src/backends/redis/index.ts',
  'nest-messaging/nats': 'libs/messaging/src/backends/nats/index.ts',
  'nest-messaging/testing': 'libs/messaging/src/testing/index.ts',
  'nest-messaging/backend': 'libs/messaging/src/backend/index.ts',
  'nest-messaging/terminus': 'libs/messaging/src/health/terminus/index.ts',
  'nest-messaging/dashboard': 'libs/messaging/src/dashboard/index.ts',
};

/** Languages of the fenced blocks that are compiled. */
const TYPESCRIPT = new Set(['ts', 'typescript']);
/** The info-string word that keeps a block out of the compilation. */
const NOCOMPILE = 'nocompile';

/** One compilable block of one page. */
interface DocBlock {
  /** `docs/<page>.md`, relative to the repository. */
  readonly page: string;
  /** Line of the opening fence in the page (1-based). */
  readonly line: number;
  /** Absolute path of the virtual file. */
  readonly fileName: string;
  readonly code: string;
}

/** Every `.md` file under `dir`, sorted. */
function markdownFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return markdownFiles(path);
      return entry.isFile() && entry.name.endsWith('.md') ? [path] : [];
    })
    .sort();
}

const FENCE = /^(\s*)(`{3,}|~{3,})(.*)$/;
/** A first line naming the file the block is: `// src/main.ts`. */
const FILE_NAME = /^\/\/ ((?:[\w.-]+\/)*[\w.-]+\.ts)$/;

/**
 * The compilable blocks of one page: fenced with ``` or ~~~ (indented ones, in list items, too),
 * language `ts` or `typescript`, without `nocompile`.
 */
function extractBlocks(page: string, markdown: string): DocBlock[] {
  const lines = markdown.split(/\r?\n/);
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, info] = open;
    const close = new RegExp(`^\\s*${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`);
    let end = i + 1;
    while (end < lines.length && !close.test(lines[end])) end++;
    const words = info.trim().split(/\s+/);
    if (TYPESCRIPT.has(words[0].toLowerCase()) && !words.includes(NOCOMPILE)) {
      const body = lines
        .slice(i + 1, end)
        .map((line) => (line.startsWith(indent) ? line.slice(indent.length) : line.trimStart()));
      const named = FILE_NAME.exec(body[0] ?? '');
      blocks.push({
        page,
        line: i + 1,
        fileName: named
          ? join(ROOT, `${page}.files`, named[1])
          : join(ROOT, `${page}.${blocks.length + 1}.ts`),
        // Each block is a module of its own, even one without an import or export.
        code: `${body.join('\n')}\nexport {};\n`,
      });
    }
    i = end;
  }
  return blocks;
}

/** The root tsconfig.json's compiler options, with the package's public names mapped to source. */
function compilerOptions(): ts.CompilerOptions {
  const configPath = join(ROOT, 'tsconfig.json');
  const { config, error } = ts.readConfigFile(configPath, (path) => ts.sys.readFile(path));
  if (error) throw new Error(ts.flattenDiagnosticMessageText(error.messageText, '\n'));
  const parsed = ts.parseJsonConfigFileContent(config, ts.sys, ROOT, undefined, configPath);
  const paths: ts.MapLike<string[]> = { ...parsed.options.paths };
  for (const [name, file] of Object.entries(PUBLIC_NAMES)) paths[name] = [join(ROOT, file)];
  return { ...parsed.options, paths, noEmit: true, declaration: false, sourceMap: false };
}

/** One program over every block: a compiler host that serves the blocks from memory. */
function compile(blocks: readonly DocBlock[]): ts.Program {
  const options = compilerOptions();
  const host = ts.createCompilerHost(options, true);
  const virtual = new Map(blocks.map((block) => [block.fileName, block.code]));
  // The folders of the virtual files (named files sit in `docs/<page>.md.files/...`), up to ROOT.
  const folders = new Set<string>();
  for (const fileName of virtual.keys()) {
    for (let dir = dirname(fileName); dir.startsWith(ROOT) && dir !== ROOT; dir = dirname(dir))
      folders.add(dir);
  }
  const { getSourceFile, fileExists, readFile, directoryExists } = host;
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    const code = virtual.get(fileName);
    return code !== undefined
      ? ts.createSourceFile(fileName, code, languageVersion, true)
      : getSourceFile.call(host, fileName, languageVersion, onError, shouldCreate);
  };
  host.fileExists = (fileName) => virtual.has(fileName) || fileExists.call(host, fileName);
  host.readFile = (fileName) => virtual.get(fileName) ?? readFile.call(host, fileName);
  host.directoryExists = (path) =>
    folders.has(path) || (directoryExists?.call(host, path) ?? ts.sys.directoryExists(path));
  return ts.createProgram({ rootNames: [...virtual.keys()], options, host });
}

/** The errors of one block, as `docs/<page>.md:<line>: TS<code>: <message>`. */
function errorsOf(program: ts.Program, block: DocBlock): string[] {
  const file = program.getSourceFile(block.fileName);
  if (!file) return [`${block.page}:${block.line}: the block was not compiled`];
  return [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)]
    .filter((d) => d.category === ts.DiagnosticCategory.Error)
    .map((d) => {
      const at = d.start === undefined ? 0 : file.getLineAndCharacterOfPosition(d.start).line;
      const message = ts.flattenDiagnosticMessageText(d.messageText, '\n    ');
      return `${block.page}:${block.line + 1 + at}: TS${d.code}: ${message}`;
    });
}

const pages = markdownFiles(DOCS).map((path) => relative(ROOT, path));
const blocksByPage = new Map(
  pages.map((page) => [page, extractBlocks(page, readFileSync(join(ROOT, page), 'utf8'))]),
);
const allBlocks = [...blocksByPage.values()].flat();

describe('the code samples of docs/', () => {
  let program: ts.Program;

  beforeAll(() => {
    program = compile(allBlocks);
  }, 120_000);

  it('finds the pages and their TypeScript blocks', () => {
    expect(pages).toContain('docs/getting-started.md');
    expect(allBlocks.length).toBeGreaterThan(20);
  });

  it('maps exactly the entry points of the package', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'libs/messaging/package.json'), 'utf8')) as {
      exports: Record<string, unknown>;
    };
    // 'nest-messaging/amqp' is the export './amqp'.
    const mapped = Object.keys(PUBLIC_NAMES).map((name) => name.replace(/^nest-messaging/, '.'));
    expect(mapped.sort()).toEqual(
      Object.keys(pkg.exports)
        .filter((key) => key !== './package.json')
        .sort(),
    );
  });

  it('leaves the table of entry points to the package README (one table, no drift)', () => {
    const row = /^\| `nest-messaging(?:\/[\w-]+)?` +\|/m;
    const repeating = [...pages, 'README.md'].filter((page) =>
      row.test(readFileSync(join(ROOT, page), 'utf8')),
    );
    expect(repeating).toEqual([]);
  });

  it('skips nocompile blocks and reports page lines', () => {
    const page = ['# t', '```ts nocompile', 'not compiled', '```', '', '```typescript', 'x', '```'];
    const blocks = extractBlocks('docs/t.md', page.join('\n'));
    expect(blocks.map((b) => [b.line, b.code])).toEqual([[6, 'x\nexport {};\n']]);
  });

  it.each(pages)('%s compiles', (page) => {
    const blocks = blocksByPage.get(page) ?? [];
    const errors = blocks.flatMap((block) => errorsOf(program, block));
    const names = blocks.map((block) => block.fileName);
    for (const [index, name] of names.entries()) {
      if (names.indexOf(name) !== index)
        errors.push(`${page}:${blocks[index].line}: a second block names ${relative(ROOT, name)}`);
    }
    if (errors.length > 0) throw new Error(`${errors.length} error(s):\n${errors.join('\n')}`);
  });
});
