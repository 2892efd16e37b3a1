#!/usr/bin/env node
/**
 * `npm run test:cluster`: the Redis Cluster suites (Jest project `cluster`, in band): the backend
 * contract and a master failover under load, each on a private cluster of 3 masters + 3 replicas
 * that it starts on loopback ports and ends by PID (`redis-server` and `redis-cli` 7+ needed; the
 * shared Redis is never touched). See docs/reliability.md, "Redis Cluster". Other arguments go to
 * Jest, e.g. `npm run test:cluster -- -t RC1` or `-- --json --outputFile=cluster.json`.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

// Paths and patterns first: after --selectProjects Jest would read them as more project names.
const args = [...process.argv.slice(2), '--runInBand', '--selectProjects', 'cluster'];
// Bound the whole run (about a minute): a cluster left running must not keep CI waiting.
const timeoutMs = Number(process.env.TEST_TIMEOUT_MS || 5 * 60 * 1000);
const result = spawnSync(process.execPath, [require.resolve('jest/bin/jest'), ...args], {
  stdio: 'inherit',
  cwd: path.join(__dirname, '..'),
  timeout: timeoutMs,
  killSignal: 'SIGKILL',
});
if (result.error && result.error.code === 'ETIMEDOUT') {
  console.error(
    `\nthe Redis Cluster suite was still running after ${timeoutMs / 1000} s and was stopped`,
  );
}
process.exit(result.status ?? 1);
