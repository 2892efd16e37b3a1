#!/usr/bin/env node
/**
 * `npm run test:faults`: the fault-injection suite (Jest project `faults`, in band), see
 * docs/reliability.md. `--soak N` also runs the soak scenario for N seconds (random faults under
 * load; it sets FAULTS_SOAK_SECONDS, which Jest cannot take as a flag). Other arguments go to Jest,
 * e.g. `npm run test:faults -- -t F7` or `-- --json --outputFile=faults.json`.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const args = [];
const env = { ...process.env };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--soak') {
    const seconds = Number(argv[++i]);
    if (!Number.isInteger(seconds) || seconds <= 0) {
      console.error(`--soak takes a number of seconds, e.g. --soak 300 (got '${argv[i]}')`);
      process.exit(2);
    }
    env.FAULTS_SOAK_SECONDS = String(seconds);
  } else {
    args.push(argv[i]);
  }
}
// Paths and patterns first: after --selectProjects Jest would read them as more project names.
args.push('--runInBand', '--selectProjects', 'faults');
const soak = Number(env.FAULTS_SOAK_SECONDS || 0);
// Bound the whole run: a scenario that leaves a handle open must not keep CI waiting forever.
const timeoutMs = Number(env.TEST_TIMEOUT_MS || (20 * 60 + soak * 2) * 1000);
const result = spawnSync(process.execPath, [require.resolve('jest/bin/jest'), ...args], {
  stdio: 'inherit',
  cwd: path.join(__dirname, '..'),
  env,
  timeout: timeoutMs,
  killSignal: 'SIGKILL',
});
if (result.error && result.error.code === 'ETIMEDOUT') {
  console.error(`\nthe fault suite was still running after ${timeoutMs / 1000} s and was stopped`);
}
process.exit(result.status ?? 1);
