/**
 * Who may do what on the dashboard, as Nest guards on its controller:
 *
 * | guard                   | on            | refuses with                                                    |
 * | ----------------------- | ------------- | --------------------------------------------------------------- |
 * | the app's (`guard`)     | every route   | its own answer: 403 when it returns false, or what it throws (401) |
 * | `canActivate` function  | every route   | 403 when it returns false                                       |
 * | {@link DashboardPostGuard} | every POST | 403 in `readOnly` mode; 403 without the page's CSRF token in `x-csrf-token` |
 *
 * The app's guard runs first (class guards before method guards): an unknown caller gets its answer,
 * never a hint about the token.
 */
import { timingSafeEqual } from 'node:crypto';
import {
  type CanActivate,
  type ExecutionContext,
  ForbiddenException,
  Inject,
  Injectable,
  type Type,
} from '@nestjs/common';
import { CSRF_HEADER } from './dashboard-api';
import type { DashboardRequest, ResolvedDashboardOptions } from './dashboard-options';
import { DashboardService } from './dashboard.service';

/** The guard of every route: the app's, or one that asks its `canActivate` function; none when public. */
export function accessGuard(
  options: ResolvedDashboardOptions,
): Type<CanActivate> | CanActivate | undefined {
  if (options.guard) return options.guard;
  const allow = options.canActivate;
  if (!allow) return undefined;
  return {
    canActivate: (context: ExecutionContext) =>
      allow(context.switchToHttp().getRequest<DashboardRequest>()),
  };
}

/** Refuses every POST in `readOnly` mode, and those without the page's CSRF token. */
@Injectable()
export class DashboardPostGuard implements CanActivate {
  constructor(@Inject(DashboardService) private readonly dashboard: DashboardService) {}

  canActivate(context: ExecutionContext): boolean {
    if (this.dashboard.options.readOnly) {
      throw new ForbiddenException(
        'The dashboard is read-only (MessagingDashboardModule readOnly)',
      );
    }
    const request = context.switchToHttp().getRequest<DashboardRequest>();
    if (!sameToken(request.headers[CSRF_HEADER], this.dashboard.csrfToken)) {
      throw new ForbiddenException(
        `A dashboard action needs the page's CSRF token in the ${CSRF_HEADER} header`,
      );
    }
    return true;
  }
}

/** Whether `given` is `token`, compared in constant time. */
export function sameToken(given: string | string[] | undefined, token: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
