/**
 * The package as a user gets it. `npm pack` of libs/messaging, installed into a fresh Nest app in a
 * temporary folder outside the repository, compiled with a Nest starter's tsconfig, running the
 * one-file example of the README that ships in the package: first on the in-memory backend with no
 * `amqplib` installed (it is an optional peer), then on RabbitMQ, in a vhost of its own.
 *
 * Run by `npm run test:package` (CI); it installs from the npm registry, so it takes a minute.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const ROOT = join(__dirname, '..', '..');
const LIB = join(ROOT, 'libs', 'messaging');
const VHOST = `pack-${randomUUID().slice(0, 8)}`;
const BROKER = process.env.BROKER_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const run = promisify(execFile);

/** Runs a command; resolves with its output, rejects with it (and the command) on failure. */
async function sh(
  command: string,
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<string> {
  try {
    const { stdout, stderr } = await run(command, args, {
      cwd,
      env: { ...process.env, ...env },
      timeout: 240_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout + stderr;
  } catch (error) {
    const e = error as Error & { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${e.message}\n${e.stdout}\n${e.stderr}`, {
      cause: error,
    });
  }
}

/** The version range the monorepo itself uses for `name`, so the fresh app matches it. */
function rangeOf(name: string): string {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  const range = pkg.dependencies[name] ?? pkg.devDependencies[name];
  if (!range) throw new Error(`${name} is not a dependency of the monorepo`);
  return range;
}

/** The fenced TypeScript block of `readme` that starts with `// main.ts`. */
function exampleOf(readme: string): string {
  const block = /```ts\n(\/\/ main\.ts[\s\S]*?)```/.exec(readme);
  if (!block) throw new Error('the package README has no ```ts block starting with // main.ts');
  return block[1];
}

/** What the tsconfig of `nest new` sets, which the example must compile with. */
const STARTER_TSCONFIG = {
  compilerOptions: {
    module: 'nodenext',
    moduleResolution: 'nodenext',
    resolvePackageJsonExports: true,
    esModuleInterop: true,
    isolatedModules: true,
    declaration: true,
    removeComments: true,
    emitDecoratorMetadata: true,
    experimentalDecorators: true,
    allowSyntheticDefaultImports: true,
    target: 'ES2023',
    sourceMap: true,
    outDir: './dist',
    rootDir: './src',
    incremental: false,
    skipLibCheck: true,
    strictNullChecks: true,
    forceConsistentCasingInFileNames: true,
    noImplicitAny: false,
    strictBindCallApply: false,
    noFallthroughCasesInSwitch: false,
    types: ['node'],
  },
};

/**
 * An app of the user's that mounts the dashboard (`nest-messaging/dashboard`) on its Express server,
 * dead-letters a message and reads it through the page's API, as the page does: it prints
 * `dashboard ok` when every answer is right.
 */
const DASHBOARD_APP = `
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Consume, InMemoryBackend, MessagingModule, MessagingPublisher, MessagingServer, UnrecoverableError } from 'nest-messaging';
import { MessagingDashboardModule } from 'nest-messaging/dashboard';

@Controller()
class Broken {
  @Consume('card.charged')
  charge() {
    throw new UnrecoverableError('card 4242 refused');
  }
}

@Module({
  imports: [
    MessagingModule.forRoot({ service: 'shop', backend: new InMemoryBackend() }),
    MessagingDashboardModule.forRoot({ public: true }),
  ],
  controllers: [Broken],
})
class AppModule {}

function check(ok: boolean, what: string) {
  if (!ok) throw new Error('dashboard: ' + what);
}

async function main() {
  const app = await NestFactory.create(AppModule, { logger: false });
  app.connectMicroservice({ strategy: app.get(MessagingServer) });
  await app.startAllMicroservices();
  await app.listen(0, '127.0.0.1');
  const base = (await app.getUrl()) + '/messaging';
  try {
    const page = await fetch(base);
    const html = await page.text();
    check(page.status === 200 && /text\\/html/.test(page.headers.get('content-type') ?? ''), 'page');
    check((page.headers.get('content-security-policy') ?? '').includes("default-src 'none'"), 'CSP');
    const token = /name="csrf-token" content="([^"]+)"/.exec(html)?.[1] ?? '';
    check((await fetch(base + '/assets/app.js')).status === 200, 'script');
    await app.get(MessagingPublisher).publish({ topic: 'card.charged' }, { card: '4242' });
    let groups: any;
    for (let i = 0; i < 100; i++) {
      groups = await (await fetch(base + '/api/dead-letters')).json();
      if (groups.total === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    check(groups.total === 1 && groups.groups[0].errorClass === 'UnrecoverableError', 'group');
    const overview = await (await fetch(base + '/api/overview')).json();
    check(overview.handlers[0].name === 'Broken.charge', 'handlers');
    const id = groups.groups[0].letters[0].id;
    const refused = await fetch(base + '/api/dead-letters/' + id + '/replay', { method: 'POST' });
    check(refused.status === 403, 'CSRF');
    const replayed = await fetch(base + '/api/dead-letters/' + id + '/replay', {
      method: 'POST',
      headers: { 'x-csrf-token': token },
    });
    check(replayed.status === 200 && (await replayed.json()).replayed === true, 'replay');
    console.log('dashboard ok');
  } finally {
    await app.close();
  }
}
main().catch((error) => {
  console.error(error);
  process.exit(1);
});
`;

describe('nest-messaging, packed and installed into a fresh Nest app', () => {
  let work: string;
  let app: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nest-messaging-pack-'));
    app = join(work, 'app');
    mkdirSync(join(app, 'src'), { recursive: true });
    await sh('npm', ['run', 'build:lib'], ROOT);
    await sh('npm', ['pack', '--pack-destination', work], LIB);
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
    if (!tarball) throw new Error('npm pack made no tarball');
    const dependencies = Object.fromEntries(
      [
        '@nestjs/common',
        '@nestjs/core',
        '@nestjs/microservices',
        '@nestjs/platform-express',
        'class-transformer',
        'class-validator',
        'reflect-metadata',
        'rxjs',
      ].map((name) => [name, rangeOf(name)]),
    );
    const manifest = {
      name: 'fresh-nest-app',
      private: true,
      dependencies: { ...dependencies, 'nest-messaging': `file:${join(work, tarball)}` },
      devDependencies: { typescript: rangeOf('typescript'), '@types/node': rangeOf('@types/node') },
    };
    writeFileSync(join(app, 'package.json'), JSON.stringify(manifest, null, 2));
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(STARTER_TSCONFIG, null, 2));
    await sh('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], app);
    const readme = readFileSync(join(app, 'node_modules', 'nest-messaging', 'README.md'), 'utf8');
    writeFileSync(join(app, 'src', 'main.ts'), exampleOf(readme));
    writeFileSync(join(app, 'src', 'dashboard.ts'), DASHBOARD_APP);
    await sh(join(app, 'node_modules', '.bin', 'tsc'), ['-p', '.'], app);
  }, 300_000);

  afterAll(async () => {
    await sh('rabbitmqctl', ['-q', 'delete_vhost', VHOST], ROOT).catch(() => undefined);
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  it('ships compiled JavaScript, declarations and an exports map, and hides its internals', async () => {
    const pkg = JSON.parse(
      readFileSync(join(app, 'node_modules', 'nest-messaging', 'package.json'), 'utf8'),
    ) as { exports: Record<string, unknown>; peerDependencies: Record<string, string> };
    expect(Object.keys(pkg.exports).sort()).toEqual(
      [
        '.',
        './amqp',
        './backend',
        './dashboard',
        './memory',
        './nats',
        './package.json',
        './redis',
        './terminus',
        './testing',
      ].sort(),
    );
    expect(Object.keys(pkg.peerDependencies)).toEqual(
      expect.arrayContaining(['@nestjs/common', '@nestjs/core', '@nestjs/microservices', 'rxjs']),
    );
    const probe = [
      "const m = require('nest-messaging');",
      "for (const n of ['MessagingModule','MessagingServer','MessagingClient','MessageContext','Consume','Producer','MessageProducer','InMemoryBackend','AmqpBackend','RedisStreamsBackend','NatsBackend','UnrecoverableError','UnroutableError'])",
      "  if (typeof m[n] !== 'function') throw new Error(n + ' is missing');",
      "require('nest-messaging/memory'); require('nest-messaging/amqp');",
      "require('nest-messaging/redis'); require('nest-messaging/nats');",
      // Their clients are optional peers, not installed here: constructing says what to install.
      "try { new m.RedisStreamsBackend({ url: 'redis://127.0.0.1:6379' }); throw new Error('ioredis loaded'); }",
      'catch (e) { if (!/npm install ioredis/.test(e.message)) throw e; }',
      "try { new m.NatsBackend({ servers: 'nats://127.0.0.1:4222' }); throw new Error('nats loaded'); }",
      'catch (e) { if (!/npm install @nats-io\\/transport-node @nats-io\\/jetstream/.test(e.message)) throw e; }',
      "require('nest-messaging/backend'); require('nest-messaging/testing');",
      "require('nest-messaging/terminus');",
      "if (typeof require('nest-messaging/dashboard').MessagingDashboardModule !== 'function') throw new Error('dashboard');",
      "try { require('nest-messaging/dist/retry/retry-policy'); throw new Error('internal reachable'); }",
      "catch (e) { if (e.code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw e; }",
      "console.log('entry points ok');",
    ].join('\n');
    // /testing needs @nestjs/testing, a dev dependency of apps that test; /terminus needs
    // @nestjs/terminus; the others need nothing more.
    await sh(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        '--no-save',
        `@nestjs/testing@${rangeOf('@nestjs/testing')}`,
        `@nestjs/terminus@${rangeOf('@nestjs/terminus')}`,
      ],
      app,
    );
    expect(await sh('node', ['-e', probe], app)).toContain('entry points ok');
  });

  it('ships no file of its tests: specs, fixtures, a test child process', () => {
    // libs/messaging/src/package-files.spec.ts checks the build's files before any build; this is
    // the package itself, after npm pack and install.
    const files = (
      readdirSync(join(app, 'node_modules', 'nest-messaging'), {
        recursive: true,
      }) as string[]
    ).map((file) => file.split('\\').join('/'));
    expect(files.filter((file) => file.startsWith('dist/')).length).toBeGreaterThan(100);
    expect(files.filter((file) => /(\.(spec|fixture)|-child)\.(js|d\.ts)$/.test(file))).toEqual([]);
  });

  it('runs the README example on the in-memory backend, without any broker client installed', async () => {
    for (const client of ['amqplib', 'ioredis', '@nats-io/transport-node', '@nats-io/jetstream']) {
      await expect(sh('node', ['-e', `require.resolve('${client}')`], app)).rejects.toThrow(
        new RegExp(`Cannot find module '${client}'`),
      );
    }
    const output = await sh('node', ['dist/main.js'], app);
    expect(output).toContain('charged o-1 on attempt 2');
    expect(output).toMatch(/reason: 'unrecoverable'/);
    expect(output).not.toContain('charged o-2');
  });

  it('mounts the dashboard in an app of its own, on Express', async () => {
    expect(await sh('node', ['dist/dashboard.js'], app)).toContain('dashboard ok');
  });

  it('installs its command line: the migration SQL, and how to get pg when it is missing', async () => {
    const sql = await sh('npx', ['--no-install', 'nest-messaging', 'migrate', '--print'], app);
    expect(sql).toContain('CREATE TABLE IF NOT EXISTS "messaging".messaging_outbox');
    await expect(
      sh(
        'npx',
        [
          '--no-install',
          'nest-messaging',
          'migrate',
          '--database-url',
          'postgres://nobody@127.0.0.1/x',
        ],
        app,
      ),
    ).rejects.toThrow(/needs the 'pg' package to open a connection: npm install pg/);
    const dlq = await sh('npx', ['--no-install', 'nest-messaging', 'dlq', '--help'], app);
    for (const command of ['list', 'show', 'replay', 'purge']) expect(dlq).toContain(command);
  });

  it('runs the README example on RabbitMQ once amqplib is installed', async () => {
    await sh(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', `amqplib@${rangeOf('amqplib')}`],
      app,
    );
    await sh('rabbitmqctl', ['-q', 'add_vhost', VHOST], ROOT);
    await sh(
      'rabbitmqctl',
      ['-q', 'set_permissions', '-p', VHOST, 'guest', '.*', '.*', '.*'],
      ROOT,
    );
    const output = await sh('node', ['dist/main.js'], app, { BROKER_URL: `${BROKER}/${VHOST}` });
    expect(output).toContain('Connected to RabbitMQ');
    expect(output).toContain('charged o-1 on attempt 2');
    expect(output).toMatch(/reason: 'unrecoverable'/);
    expect(output).not.toContain('guest:guest');
  });
});
