/**
 * The import structure of the library, checked in CI (`npm run deps`).
 *
 * `libs/messaging/src` is built in floors. A file may import files of its own floor and of the floors
 * below it, never above: the floors tell what depends on what, and a change to a floor can only break
 * the floors above it. Type-only imports count too.
 *
 * | floor | folders                                   | what it is                                          |
 * | ----- | ----------------------------------------- | --------------------------------------------------- |
 * | 0     | `errors/`, `messaging.constants.ts`       | error classes, failure description, option checks, DI tokens |
 * | 1     | `backend/`                                | the backend contract: types, header helpers, topic matching, the delivery limit |
 * | 2     | `retry/`, `codec/`, `observability/`, `store/` | the retry policy and its options; body encoding and its options; metrics, trace context; the message store (inbox, outbox, transactions, Postgres) and its outbox options |
 * | 3     | `options/`                                | the module's options, resolved from the floors below |
 * | 4     | `decorators/`, `context/`                 | `@Consume`, `@Producer`, the handler's context      |
 * | 5     | `producer/`, `dead-letters/`              | services built on the options and the codec         |
 * | 6     | `client/`, `server/`, `health/`           | Nest's `ClientProxy` and transport strategy; health of the server's handlers |
 * | 7     | `module/`, `asyncapi/`                    | `MessagingModule`: assembles everything; the AsyncAPI document of its handlers |
 * | 8     | `cli/`, `dashboard/`                      | the `nest-messaging` command (`dlq`, `migrate`): a program, not a part; the dashboard page and its module, built on the whole library |
 *
 * Why `store/` is on floor 2: `options/` (3) takes a `MessageStore` and the outbox options, and the
 * publisher (5), server (6) and module (7) use the store, so it sits below them all; it needs only
 * the contract (1), the error classes and tokens (0) and the metrics of `observability/` (2, the
 * same floor). The outbox relay reads its options from the module's resolved options by their shape
 * (`{ outbox }`), not by importing `options/`.
 * Why `cli/` is on a floor of its own, the top one: it is a program built on the library (the
 * codec, the Postgres store, a backend's options), and nothing of the library may import it.
 *
 * Beside the floors:
 * - `backends/<name>/` (memory, amqp, ...): a backend does mechanics only, so it may import the
 *   contract (`backend/`) and `errors/` and nothing else of the library, and never another backend.
 *   The policy a backend applies itself (the delivery limit) is therefore decided in `backend/`, not
 *   in `retry/`.
 * - `testing/`: helpers and the contract suites; may import anything, and nothing imports it except
 *   specs and fixtures (no exception: `runBackendContract` is exported by the `/testing` entry).
 * - The entry points (`index.ts`, `backend/index.ts`, `backends/*\/index.ts`, `testing/index.ts`,
 *   `health/terminus/index.ts`, `dashboard/index.ts`) are
 *   what the package exports; the apps import the library only through them (`@app/messaging...`).
 * - No cycles, anywhere.
 */
const SRC = '^libs/messaging/src/';

/** Floors, lowest first: each is a list of path patterns under `SRC`. */
const FLOORS = [
  ['errors/', 'messaging\\.constants\\.ts$'],
  ['backend/'],
  ['retry/', 'codec/', 'observability/', 'store/'],
  ['options/'],
  ['decorators/', 'context/'],
  ['producer/', 'dead-letters/'],
  ['client/', 'server/', 'health/'],
  ['module/', 'asyncapi/'],
  ['cli/', 'dashboard/'],
];

/** Specs and fixtures may import across floors (a spec of a floor uses the test helpers). */
const TESTS = '\\.(spec|fixture)\\.ts$';
const ENTRIES = [
  `${SRC}index\\.ts$`,
  `${SRC}backend/index\\.ts$`,
  `${SRC}backends/[^/]+/index\\.ts$`,
  `${SRC}testing/index\\.ts$`,
  `${SRC}health/terminus/index\\.ts$`,
  `${SRC}dashboard/index\\.ts$`,
];

const paths = (floor) => floor.map((p) => SRC + p);

const floorRules = FLOORS.slice(0, -1).map((floor, i) => ({
  name: `floor-${i}-looks-down`,
  comment: `Floor ${i} (${floor.join(', ')}) may not import a floor above it.`,
  severity: 'error',
  from: { path: paths(floor), pathNot: TESTS },
  to: { path: FLOORS.slice(i + 1).flatMap(paths) },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycles.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...floorRules,
    {
      name: 'every-folder-has-a-floor',
      comment:
        'Each folder of libs/messaging/src is on a floor or beside them (backends/, testing/): ' +
        'add a new folder to FLOORS and to the table at the top of this file.',
      severity: 'error',
      from: {
        path: SRC,
        pathNot: [
          ...FLOORS.flatMap(paths),
          `${SRC}backends/`,
          `${SRC}testing/`,
          `${SRC}index\\.ts$`,
          TESTS,
        ],
      },
      to: {},
    },
    {
      name: 'backends-do-mechanics-only',
      comment: 'A backend imports only the backend contract (backend/) and errors/ of the library.',
      severity: 'error',
      from: { path: `${SRC}backends/`, pathNot: TESTS },
      to: {
        path: SRC,
        pathNot: [`${SRC}backend/`, `${SRC}errors/`, `${SRC}backends/`],
      },
    },
    {
      name: 'backends-are-independent',
      comment: 'One backend never imports another.',
      severity: 'error',
      from: { path: `${SRC}backends/([^/]+)/`, pathNot: TESTS },
      to: { path: `${SRC}backends/`, pathNot: `${SRC}backends/$1/` },
    },
    {
      name: 'production-never-imports-testing',
      comment: 'testing/ is for tests; only specs and fixtures may load it.',
      severity: 'error',
      from: { path: SRC, pathNot: [TESTS, `${SRC}testing/`] },
      to: { path: `${SRC}testing/` },
    },
    {
      name: 'apps-use-entry-points',
      comment: 'Apps and service-kit import the library only through its entry points.',
      severity: 'error',
      from: { path: ['^apps/', '^libs/service-kit/'] },
      to: { path: SRC, pathNot: ENTRIES },
    },
    {
      name: 'no-unresolvable',
      comment: 'Every import resolves (a typo in a path, or a missing dependency).',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: ['(^|/)dist/', 'node_modules'] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.d.ts'],
    },
  },
};
