/**
 * The options of `MessagingDashboardModule.forRoot()`, checked when the app's modules are built (a
 * `MessagingConfigError` that names the fix) and resolved against these defaults:
 *
 * | option         | default       | checked                                                              |
 * | -------------- | ------------- | -------------------------------------------------------------------- |
 * | `path`         | `/messaging`  | starts with `/`, letters, digits, `-_.~/` only (no route parameters)  |
 * | `guard`        | none          | a guard class or instance (`canActivate` method)                     |
 * | `canActivate`  | none          | a function; not with `guard`                                         |
 * | `public`       | `false`       | `true` is the only way to serve the dashboard without a guard; not with one |
 * | `readOnly`     | `false`       | boolean: hides the actions, refuses every POST (403)                 |
 * | `pollMs`       | 2000          | integer, 250 to 3,600,000                                            |
 * | `maxBodyBytes` | 16384         | integer, 0 to 16 MiB                                                 |
 * | `maxLetters`   | 1000          | integer, 1 to 100,000                                                |
 * | `connections`  | every one     | non-empty list of connection names (checked against the app's at start) |
 * | `imports`      | none          | modules the guard class needs (its dependencies)                     |
 */
import type { CanActivate, ModuleMetadata, Type } from '@nestjs/common';
import { checkBoolean, checkInteger, checkName, checkOptionsObject } from '../errors/config-checks';
import { MessagingConfigError } from '../errors/messaging.errors';

/**
 * The HTTP request a guard function sees: Express's or Fastify's, typed loosely so that the
 * dashboard depends on neither.
 */
export interface DashboardRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly [key: string]: unknown;
}

/** `MessagingDashboardModule.forRoot()`: where the page is, who may see it, what it may do. */
export interface MessagingDashboardOptions {
  /** Where the page is served on the app's HTTP server; the API lives under it. @default '/messaging' */
  path?: string;
  /**
   * Who may use the dashboard (page, assets, API): a guard class (built by Nest in the dashboard's
   * module: give what it injects in `imports`) or instance. Its refusal is the answer (403, or 401
   * when it throws `UnauthorizedException`).
   */
  guard?: Type<CanActivate> | CanActivate;
  /** Who may use the dashboard, as a function of the request (instead of a `guard`). */
  canActivate?: (request: DashboardRequest) => boolean | Promise<boolean>;
  /**
   * Serve the dashboard without a guard: anyone who reaches the HTTP port can see the dead letters'
   * bodies and replay or purge them. Say so explicitly or give a guard. @default false
   */
  public?: boolean;
  /** Show, never act: no Replay or Purge, every POST refused (403). @default false */
  readOnly?: boolean;
  /** How often the page refreshes its data, in milliseconds. @default 2000 */
  pollMs?: number;
  /** The most bytes of a dead letter's body shown; the rest is cut off. @default 16384 */
  maxBodyBytes?: number;
  /**
   * The most dead letters listed (the newest; every letter is still counted in its group).
   * @default 1000
   */
  maxLetters?: number;
  /** The connections (`MessagingModule.forRoot({ name })`) shown. @default every connection of the app */
  connections?: readonly string[];
  /** Modules that provide what the `guard` class injects. */
  imports?: ModuleMetadata['imports'];
}

/** The options with their defaults in place. */
export interface ResolvedDashboardOptions {
  /** Without a trailing `/`. */
  readonly path: string;
  readonly guard?: Type<CanActivate> | CanActivate;
  readonly canActivate?: (request: DashboardRequest) => boolean | Promise<boolean>;
  readonly public: boolean;
  readonly readOnly: boolean;
  readonly pollMs: number;
  readonly maxBodyBytes: number;
  readonly maxLetters: number;
  readonly connections?: readonly string[];
  readonly imports: NonNullable<ModuleMetadata['imports']>;
}

export const DEFAULT_DASHBOARD_PATH = '/messaging';
export const DEFAULT_POLL_MS = 2000;
export const DEFAULT_MAX_BODY_BYTES = 16_384;
export const DEFAULT_MAX_LETTERS = 1000;

const WHERE = 'MessagingDashboardModule.forRoot()';
const KNOWN = [
  'path',
  'guard',
  'canActivate',
  'public',
  'readOnly',
  'pollMs',
  'maxBodyBytes',
  'maxLetters',
  'connections',
  'imports',
];

/** `options` checked (see the file comment) and with the defaults in place. */
export function resolveDashboardOptions(
  options: MessagingDashboardOptions | undefined,
): ResolvedDashboardOptions {
  const given = checkOptionsObject(options, KNOWN, WHERE) ?? {};
  const { guard, canActivate } = given;
  checkAccess(given);
  return {
    path: checkPath(given.path),
    ...(guard !== undefined && { guard }),
    ...(canActivate !== undefined && { canActivate }),
    public: given.public === true,
    readOnly: checkBoolean(given.readOnly, false, `${WHERE}: readOnly`),
    pollMs: checkInteger(given.pollMs, DEFAULT_POLL_MS, `${WHERE}: pollMs`, 250, 3_600_000),
    maxBodyBytes: checkInteger(
      given.maxBodyBytes,
      DEFAULT_MAX_BODY_BYTES,
      `${WHERE}: maxBodyBytes`,
      0,
      16 * 1024 * 1024,
    ),
    maxLetters: checkInteger(
      given.maxLetters,
      DEFAULT_MAX_LETTERS,
      `${WHERE}: maxLetters`,
      1,
      100_000,
    ),
    ...(given.connections !== undefined && { connections: checkConnections(given.connections) }),
    imports: given.imports ?? [],
  };
}

/** A guard, a `canActivate` or `public: true`: exactly one of them. */
function checkAccess(given: MessagingDashboardOptions): void {
  const { guard, canActivate } = given;
  checkBoolean(given.public, false, `${WHERE}: public`);
  if (guard !== undefined && !isGuard(guard)) {
    throw new MessagingConfigError(
      `${WHERE}: guard must be a guard class or an object with a canActivate(context) method`,
    );
  }
  if (canActivate !== undefined && typeof canActivate !== 'function') {
    throw new MessagingConfigError(
      `${WHERE}: canActivate must be a function (request) => boolean | Promise<boolean>`,
    );
  }
  if (guard !== undefined && canActivate !== undefined) {
    throw new MessagingConfigError(`${WHERE}: give a guard or a canActivate function, not both`);
  }
  const guarded = guard !== undefined || canActivate !== undefined;
  if (given.public === true && guarded) {
    throw new MessagingConfigError(
      `${WHERE}: public: true serves the dashboard to anyone, and a guard limits it: drop one of them`,
    );
  }
  if (given.public !== true && !guarded) {
    throw new MessagingConfigError(
      `${WHERE} needs a guard ({ guard: AdminGuard } or { canActivate: (req) => ... }) or { public: true } to serve it without one`,
    );
  }
}

function isGuard(guard: unknown): boolean {
  if (typeof guard === 'function') return true;
  return (
    typeof guard === 'object' &&
    guard !== null &&
    typeof (guard as { canActivate?: unknown }).canActivate === 'function'
  );
}

function checkPath(path: unknown): string {
  if (path === undefined) return DEFAULT_DASHBOARD_PATH;
  if (typeof path !== 'string' || !/^\/[\w\-.~/]*$/.test(path) || path.includes('//')) {
    throw new MessagingConfigError(
      `${WHERE}: path must start with '/' and hold letters, digits and - _ . ~ / only (like '/admin/messaging'), got ${JSON.stringify(path)}`,
    );
  }
  return path.length > 1 ? path.replace(/\/+$/, '') : path;
}

function checkConnections(connections: unknown): readonly string[] {
  if (!Array.isArray(connections) || connections.length === 0) {
    throw new MessagingConfigError(
      `${WHERE}: connections must be a non-empty list of connection names, like ['default', 'events']`,
    );
  }
  return connections.map((name, i) => checkName(name, `${WHERE}: connections[${i}]`) as string);
}
