#!/usr/bin/env node
/**
 * The `nest-messaging` command: the built command line (`dist/cli/main.js`), run as it is. A
 * published package always has it; in the repository, `npm ci` builds it (the root's `prepare`) and
 * `npm run build:lib` builds it again after a change to the library.
 */
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const main = join(__dirname, '..', 'dist', 'cli', 'main.js');
if (!existsSync(main)) {
  process.stderr.write(
    `nest-messaging: ${main} is not built. In the repository, run \`npm run build:lib\` first.\n`,
  );
  process.exit(1);
}
require(main).runCli();
