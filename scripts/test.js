#!/usr/bin/env node
/**
 * `npm test`: runs every Jest suite. The RabbitMQ suites (Jest project `rabbitmq`) run when the broker
 * answers on BROKER_URL (default amqp://guest:guest@127.0.0.1:5672) and are skipped LOUDLY otherwise;
 * with CI=true a missing broker fails the run instead. Extra arguments go to Jest.
 * The PostgreSQL suites (Jest project `postgres`) likewise, on DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/test).
 * With JEST_JSON_OUTPUT=path, Jest also writes its JSON results there (used by .ci/run).
 */
'use strict';
const net = require('node:net');
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const brokerUrl = new URL(process.env.BROKER_URL || 'amqp://guest:guest@127.0.0.1:5672');
const host = brokerUrl.hostname || '127.0.0.1';
const port = Number(brokerUrl.port || (brokerUrl.protocol === 'amqps:' ? 5671 : 5672));
const isCI = /^(1|true)$/i.test(process.env.CI || '');

const databaseUrl = new URL(process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test');

/** PostgreSQL answers an SSLRequest with one byte, 'S' or 'N'. */
function postgresAnswers() {
  return new Promise((resolve) => {
    const socket = net.connect({ host: databaseUrl.hostname || '127.0.0.1', port: Number(databaseUrl.port || 5432) });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write(Buffer.from([0, 0, 0, 8, 4, 210, 22, 47])));
    socket.once('data', (data) => done(data[0] === 0x53 || data[0] === 0x4e));
  });
}

function brokerAnswers() {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('error', () => done(false));
    // An AMQP server answers a bad protocol header with its own: proof it is a broker, not just a port.
    socket.once('connect', () => socket.write('AMQP\x00\x00\x09\x01'));
    socket.once('data', (data) => done(data.subarray(0, 4).toString() === 'AMQP' || data.length > 0));
  });
}

function banner(lines) {
  const width = Math.max(...lines.map((l) => l.length)) + 4;
  const bar = '!'.repeat(width);
  console.error(`\n${bar}\n${lines.map((l) => `! ${l.padEnd(width - 4)} !`).join('\n')}\n${bar}\n`);
}

(async () => {
  const rabbit = await brokerAnswers();
  // Paths and patterns first: after --selectProjects Jest would read them as more project names.
  const args = [...process.argv.slice(2), '--runInBand'];
  // The `package` project (npm pack + install, a minute) is CI's: `npm run test:package`.
  const projects = ['unit', 'rabbitmq', 'postgres'];
  const postgres = await postgresAnswers();
  if (!postgres) {
    const where = `${databaseUrl.hostname}:${databaseUrl.port || 5432}`;
    if (isCI) {
      banner([`PostgreSQL does not answer on ${where}, and CI=true requires the PostgreSQL suites.`, 'Start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start']);
      process.exit(1);
    }
    banner([
      `SKIPPED: the PostgreSQL suites (Jest project "postgres"): no PostgreSQL on ${where}.`,
      'Start one or set DATABASE_URL, then run npm test again.',
    ]);
    projects.splice(projects.indexOf('postgres'), 1);
  }
  if (!rabbit) {
    const where = `${host}:${port}`;
    if (isCI) {
      banner([`RabbitMQ does not answer on ${where}, and CI=true requires the broker suites.`, 'Start it: rabbitmq-server -detached && rabbitmqctl await_startup']);
      process.exit(1);
    }
    banner([
      `SKIPPED: the RabbitMQ suites (Jest project "rabbitmq"): no broker on ${where}.`,
      'Start one (rabbitmq-server -detached) or set BROKER_URL, then run npm test again.',
    ]);
    projects.splice(projects.indexOf('rabbitmq'), 1);
  }
  args.push('--selectProjects', ...projects);
  if (process.env.JEST_JSON_OUTPUT) args.push('--json', `--outputFile=${process.env.JEST_JSON_OUTPUT}`);
  const jest = require.resolve('jest/bin/jest');
  // A test that leaves a handle open would keep Jest alive forever: bound the whole run instead.
  const timeoutMs = Number(process.env.TEST_TIMEOUT_MS || 20 * 60 * 1000);
  const result = spawnSync(process.execPath, [jest, ...args], {
    stdio: 'inherit',
    cwd: path.join(__dirname, '..'),
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  });
  if (result.error && result.error.code === 'ETIMEDOUT') {
    banner([`Jest was still running after ${timeoutMs / 1000} s and was stopped: a test left something open.`]);
  }
  if (!rabbit) banner(['Reminder: the RabbitMQ suites were SKIPPED (no broker).']);
  if (!postgres) banner(['Reminder: the PostgreSQL suites were SKIPPED (no PostgreSQL).']);
  process.exit(result.status ?? 1);
})();
