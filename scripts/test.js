#!/usr/bin/env node
/**
 * `npm test`: runs every Jest suite. The suites of a server run when it answers and are skipped
 * LOUDLY otherwise; with CI=true a missing server fails the run instead. Extra arguments go to Jest.
 *
 * | Jest project | server     | where                                                            |
 * | ------------ | ---------- | ---------------------------------------------------------------- |
 * | `rabbitmq`   | RabbitMQ   | BROKER_URL, default amqp://guest:guest@127.0.0.1:5672             |
 * | `postgres`   | PostgreSQL | DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test     |
 * | `redis`      | Redis      | REDIS_URL, default redis://127.0.0.1:6379                         |
 * | `nats`       | NATS       | NATS_URL, default nats://127.0.0.1:4222 (JetStream enabled)       |
 * | `browser`    | Chromium   | CHROMIUM_PATH, default /usr/bin/chromium (a program, not a server) |
 *
 * With JEST_JSON_OUTPUT=path, Jest also writes its JSON results there (used by .ci/run).
 */
'use strict';
const net = require('node:net');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const isCI = /^(1|true)$/i.test(process.env.CI || '');
const brokerUrl = new URL(process.env.BROKER_URL || 'amqp://guest:guest@127.0.0.1:5672');
const databaseUrl = new URL(process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test');
const redisUrl = new URL(process.env.REDIS_URL || 'redis://127.0.0.1:6379');
const natsUrl = new URL(process.env.NATS_URL || 'nats://127.0.0.1:4222');

const SERVERS = [
  {
    project: 'rabbitmq',
    name: 'RabbitMQ',
    host: brokerUrl.hostname || '127.0.0.1',
    port: Number(brokerUrl.port || (brokerUrl.protocol === 'amqps:' ? 5671 : 5672)),
    // An AMQP server answers a bad protocol header with its own: proof it is a broker, not just a port.
    hello: Buffer.from('AMQP\x00\x00\x09\x01', 'latin1'),
    answered: (data) => data.subarray(0, 4).toString() === 'AMQP' || data.length > 0,
    start: 'rabbitmq-server -detached && rabbitmqctl await_startup',
    variable: 'BROKER_URL',
  },
  {
    project: 'postgres',
    name: 'PostgreSQL',
    host: databaseUrl.hostname || '127.0.0.1',
    port: Number(databaseUrl.port || 5432),
    // PostgreSQL answers an SSLRequest with one byte, 'S' or 'N'.
    hello: Buffer.from([0, 0, 0, 8, 4, 210, 22, 47]),
    answered: (data) => data[0] === 0x53 || data[0] === 0x4e,
    start: 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start',
    variable: 'DATABASE_URL',
  },
  {
    project: 'redis',
    name: 'Redis',
    host: redisUrl.hostname || '127.0.0.1',
    port: Number(redisUrl.port || 6379),
    // Any Redis answers an inline PING (with +PONG, or -NOAUTH when it wants a password).
    hello: Buffer.from('PING\r\n'),
    answered: (data) => data[0] === 0x2b || data[0] === 0x2d,
    start: 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
    variable: 'REDIS_URL',
  },
  {
    project: 'nats',
    name: 'NATS',
    host: natsUrl.hostname || '127.0.0.1',
    port: Number(natsUrl.port || 4222),
    // A NATS server speaks first: INFO {...} as soon as the connection opens.
    hello: Buffer.alloc(0),
    answered: (data) => data.subarray(0, 4).toString() === 'INFO',
    start: 'nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server &',
    variable: 'NATS_URL',
  },
];

function answers({ host, port, hello, answered }) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => hello.length > 0 && socket.write(hello));
    socket.once('data', (data) => done(answered(data)));
  });
}

function canRun(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function banner(lines) {
  const width = Math.max(...lines.map((l) => l.length)) + 4;
  const bar = '!'.repeat(width);
  console.error(`\n${bar}\n${lines.map((l) => `! ${l.padEnd(width - 4)} !`).join('\n')}\n${bar}\n`);
}

(async () => {
  // Paths and patterns first: after --selectProjects Jest would read them as more project names.
  const args = [...process.argv.slice(2), '--runInBand'];
  // The `package` project (npm pack + install, a minute) is CI's: `npm run test:package`.
  const projects = ['unit'];
  const skipped = [];
  for (const server of SERVERS) {
    if (await answers(server)) {
      projects.push(server.project);
      continue;
    }
    const where = `${server.host}:${server.port}`;
    if (isCI) {
      banner([`${server.name} does not answer on ${where}, and CI=true requires its suites.`, `Start it: ${server.start}`]);
      process.exit(1);
    }
    banner([
      `SKIPPED: the ${server.name} suites (Jest project "${server.project}"): nothing answers on ${where}.`,
      `Start it (${server.start}) or set ${server.variable}, then run npm test again.`,
    ]);
    skipped.push(server);
  }
  // The browser suites need a Chromium to drive (playwright-core downloads none).
  const chromium = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  if (canRun(chromium)) {
    projects.push('browser');
  } else {
    const install = 'apt-get install -y chromium';
    if (isCI) {
      banner([`No Chromium at ${chromium}, and CI=true requires the browser suites.`, `Install it: ${install}`]);
      process.exit(1);
    }
    banner([
      `SKIPPED: the browser suites (Jest project "browser"): no Chromium at ${chromium}.`,
      `Install it (${install}) or set CHROMIUM_PATH, then run npm test again.`,
    ]);
    skipped.push({ name: 'browser', why: `no Chromium at ${chromium}` });
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
  for (const server of skipped) banner([`Reminder: the ${server.name} suites were SKIPPED (${server.why ?? 'nothing answered'}).`]);
  process.exit(result.status ?? 1);
})();
