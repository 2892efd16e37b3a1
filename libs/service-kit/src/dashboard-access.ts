import { timingSafeEqual } from 'node:crypto';
import {
  type CanActivate,
  type DynamicModule,
  type ExecutionContext,
  Logger,
  UnauthorizedException,
} from '@nestjs/common';
import { MessagingDashboardModule } from '@app/messaging/dashboard';

/** Where the sample services serve their dashboard. */
export const DASHBOARD_PATH = '/messaging';

/**
 * Who may open a sample service's dashboard (`/messaging`), from its environment:
 *
 * | `DASHBOARD_PASSWORD` | `DASHBOARD_USER` | the dashboard                                                     |
 * | -------------------- | ---------------- | ----------------------------------------------------------------- |
 * | unset or empty       | -                | public (a warning at start-up says how to protect it)             |
 * | set                  | unset: `admin`   | HTTP Basic authentication: the browser asks, then sends it itself |
 */
export type DashboardAccess =
  { readonly public: true } | { readonly user: string; readonly password: string };

/** Reads {@link DashboardAccess} from `DASHBOARD_USER` and `DASHBOARD_PASSWORD`. */
export function dashboardAccessFromEnv(env: NodeJS.ProcessEnv = process.env): DashboardAccess {
  const password = env.DASHBOARD_PASSWORD;
  if (!password) return { public: true };
  return { user: env.DASHBOARD_USER || 'admin', password };
}

/** The user and password of an `Authorization: Basic ...` header, or undefined. */
export function basicCredentials(
  header: unknown,
): { readonly user: string; readonly password: string } | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * A guard for the dashboard: HTTP Basic authentication against one user and password, compared in
 * constant time. A refused request gets 401 with `WWW-Authenticate`, so a browser asks for them
 * (and then sends them with every request of the page, its API calls included).
 */
export class BasicAuthGuard implements CanActivate {
  constructor(private readonly expected: { readonly user: string; readonly password: string }) {}

  canActivate(context: ExecutionContext): boolean {
    const http = context.switchToHttp();
    const request = http.getRequest<{ headers: Record<string, unknown> }>();
    const given = basicCredentials(request.headers.authorization);
    // Both compared, whatever the first says: the time taken does not tell a right user name.
    const user = same(given?.user ?? '', this.expected.user);
    const password = same(given?.password ?? '', this.expected.password);
    if (given && user && password) return true;
    // Express's response and Fastify's reply both have `header(name, value)`.
    const response = http.getResponse<{ header?: (name: string, value: string) => unknown }>();
    response.header?.('WWW-Authenticate', 'Basic realm="messaging dashboard", charset="UTF-8"');
    throw new UnauthorizedException(
      'The dashboard needs the DASHBOARD_USER and DASHBOARD_PASSWORD',
    );
  }
}

/**
 * The dashboard of a sample service at {@link DASHBOARD_PATH}: behind {@link BasicAuthGuard} when
 * `access` has a password, public otherwise (said so by {@link logDashboardAccess} at start-up).
 */
export function sampleDashboard(access: DashboardAccess = { public: true }): DynamicModule {
  return MessagingDashboardModule.forRoot(
    'public' in access
      ? { path: DASHBOARD_PATH, public: true }
      : { path: DASHBOARD_PATH, guard: new BasicAuthGuard(access) },
  );
}

/** Says at start-up how the dashboard of `service` is reached. */
export function logDashboardAccess(
  service: string,
  access: DashboardAccess,
  path = DASHBOARD_PATH,
): void {
  const logger = new Logger('Dashboard');
  if ('public' in access) {
    logger.warn(
      `${service}: the dashboard at ${path} is public; set DASHBOARD_PASSWORD (and DASHBOARD_USER, default admin) to protect it`,
    );
  } else {
    logger.log(`${service}: the dashboard at ${path} asks for the user '${access.user}'`);
  }
}

function same(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}
