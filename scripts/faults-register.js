/**
 * `node -r ./scripts/faults-register.js child.ts`: runs a TypeScript child process of the
 * fault suite (and `npm run asyncapi`) straight from source, as Jest does (same @swc/core, same
 * decorator settings), so it never runs a stale build of the library. `@app/messaging` and its
 * entry points resolve like the tsconfig `paths`. NestJS 12's ES modules load through Node's own
 * require(esm); only our `.ts` files are transformed.
 */
'use strict';
const Module = require('node:module');
const fs = require('node:fs');
const path = require('node:path');
const { transformSync } = require('@swc/core');

const ROOT = path.resolve(__dirname, '..');
/** The tsconfig `paths` (`@app/messaging` -> libs/messaging/src/index.ts, ...). */
const ALIASES = Object.fromEntries(
  Object.entries(
    JSON.parse(fs.readFileSync(path.join(ROOT, 'tsconfig.json'), 'utf8')).compilerOptions.paths,
  ).map(([alias, [target]]) => [alias, path.join(target, 'index.ts')]),
);

const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  if (ALIASES[request]) return path.join(ROOT, ALIASES[request]);
  // Relative imports of TypeScript sources without an extension (`./ledger`, `../src`).
  if (request.startsWith('.') && parent && parent.filename && parent.filename.endsWith('.ts')) {
    const base = path.resolve(path.dirname(parent.filename), request);
    for (const candidate of [base + '.ts', path.join(base, 'index.ts')]) {
      if (fs.existsSync(candidate)) return candidate;
    }
  }
  return resolveFilename.call(this, request, parent, ...rest);
};

require.extensions['.ts'] = function (module, filename) {
  const source = fs.readFileSync(filename, 'utf8');
  const { code } = transformSync(source, {
    filename,
    sourceMaps: 'inline',
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
    },
    module: { type: 'commonjs' },
  });
  module._compile(code, filename);
};
