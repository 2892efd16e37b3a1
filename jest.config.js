/**
 * Jest 30 cannot require NestJS 12's ES modules itself, so @swc/jest transforms
 * both our TypeScript and the @nestjs packages to CommonJS.
 * Projects: `unit` (no broker), `rabbitmq` (needs a broker, run in band), `postgres` (needs
 * PostgreSQL: DATABASE_URL or the local one), `redis` (Redis Streams: REDIS_URL or the local one),
 * `nats` (NATS JetStream: NATS_URL or the local one), `browser` (the dashboard's page in headless
 * Chromium: CHROMIUM_PATH or /usr/bin/chromium), `package` (npm pack of
 * the library installed into a fresh app outside the repository: `npm run test:package`, in CI),
 * `cluster` (Redis Streams on a private Redis Cluster of 3+3 nodes: `npm run test:cluster`, in CI) and
 * `faults` (fault injection under load, docs/reliability.md: `npm run test:faults`, in CI).
 * @type {import('jest').Config}
 */
const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
    },
    module: { type: 'commonjs' },
  },
];

const base = {
  transform: { '^.+\\.(t|j|mj)s$': swc },
  // path-to-regexp 8 (under @fastify/middie, for @nestjs/platform-fastify) is an ES module too.
  transformIgnorePatterns: ['/node_modules/(?!(@nestjs/|(.*/)?path-to-regexp/))'],
  moduleNameMapper: {
    // The package's entry points (libs/messaging/package.json `exports`), as source.
    '^@app/messaging$': '<rootDir>/libs/messaging/src',
    '^@app/messaging/(amqp|memory|redis|nats)$': '<rootDir>/libs/messaging/src/backends/$1',
    '^@app/messaging/(testing|backend|dashboard)$': '<rootDir>/libs/messaging/src/$1',
    '^@app/messaging/terminus$': '<rootDir>/libs/messaging/src/health/terminus',
    '^@app/service-kit$': '<rootDir>/libs/service-kit/src',
  },
  testEnvironment: 'node',
  rootDir: __dirname,
};

module.exports = {
  testTimeout: 20000,
  projects: [
    {
      ...base,
      displayName: 'unit',
      testMatch: [
        '<rootDir>/libs/**/*.spec.ts',
        '<rootDir>/apps/**/*.spec.ts',
        '<rootDir>/test/**/*.e2e-spec.ts',
      ],
      testPathIgnorePatterns: [
        '/node_modules/',
        '\\.amqp\\.',
        '\\.pg\\.',
        '\\.redis\\.',
        '\\.nats\\.',
        '\\.browser\\.',
      ],
    },
    {
      ...base,
      displayName: 'rabbitmq',
      testMatch: ['<rootDir>/libs/**/*.amqp.spec.ts', '<rootDir>/test/**/*.amqp.e2e-spec.ts'],
    },
    {
      ...base,
      displayName: 'postgres',
      testMatch: ['<rootDir>/libs/**/*.pg.spec.ts', '<rootDir>/test/**/*.pg.e2e-spec.ts'],
    },
    {
      ...base,
      displayName: 'redis',
      testMatch: ['<rootDir>/libs/**/*.redis.spec.ts', '<rootDir>/test/**/*.redis.e2e-spec.ts'],
    },
    {
      ...base,
      displayName: 'nats',
      testMatch: ['<rootDir>/libs/**/*.nats.spec.ts', '<rootDir>/test/**/*.nats.e2e-spec.ts'],
    },
    {
      ...base,
      // Headless Chromium (Debian's, CHROMIUM_PATH) driven by playwright-core: the dashboard's page.
      displayName: 'browser',
      testMatch: ['<rootDir>/libs/**/*.browser.spec.ts', '<rootDir>/test/**/*.browser.e2e-spec.ts'],
    },
    {
      ...base,
      displayName: 'package',
      testMatch: ['<rootDir>/test/**/*.pack-spec.ts'],
    },
    {
      ...base,
      // A private Redis Cluster (3 masters + 3 replicas) per spec file: `npm run test:cluster`, in CI.
      displayName: 'cluster',
      testMatch: ['<rootDir>/test/cluster/**/*.cluster-spec.ts'],
      setupFilesAfterEnv: ['<rootDir>/test/faults/support/jest-setup.ts'],
    },
    {
      ...base,
      displayName: 'faults',
      testMatch: ['<rootDir>/test/faults/**/*.faults-spec.ts'],
      // Sets a generous test timeout: a scenario is a load of hundreds to thousands of messages plus a fault.
      setupFilesAfterEnv: ['<rootDir>/test/faults/support/jest-setup.ts'],
    },
  ],
};
