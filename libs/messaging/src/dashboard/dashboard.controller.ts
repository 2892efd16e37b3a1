import {
  applyDecorators,
  Body,
  Controller,
  Get,
  Header,
  HttpCode,
  Inject,
  Param,
  Post,
  Query,
  Req,
  type Type,
  UseGuards,
} from '@nestjs/common';
import type {
  DashboardJob,
  DashboardOverview,
  DeadLetterDetail,
  DeadLetterGroups,
} from './dashboard-api';
import { accessGuard, DashboardPostGuard } from './dashboard-guards';
import type { ResolvedDashboardOptions } from './dashboard-options';
import { DashboardService } from './dashboard.service';
import { DASHBOARD_SCRIPT, DASHBOARD_STYLE, renderPage } from './page';

/**
 * The page's Content-Security-Policy: nothing from elsewhere, no inline script or style, no frame.
 */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The headers of every answer of the dashboard: its page, assets and API alike. */
const Secured = (): MethodDecorator =>
  applyDecorators(
    Header('Content-Security-Policy', DASHBOARD_CSP),
    Header('X-Content-Type-Options', 'nosniff'),
    Header('Referrer-Policy', 'no-referrer'),
    Header('Cache-Control', 'no-store'),
  );

/** An action: a POST behind the read-only and CSRF checks, answered 200. */
const Action = (path: string): MethodDecorator =>
  applyDecorators(Post(path), HttpCode(200), UseGuards(DashboardPostGuard), Secured());

/**
 * The path the page was asked at, where its script and API are: the dashboard's `path` under
 * whatever the app adds before it (`app.setGlobalPrefix('api')`, URI versioning), read off the
 * request (Express's `originalUrl`, Fastify's `url`) without its query and trailing slash.
 */
export function servedAt(request: { url?: string; originalUrl?: string }, path: string): string {
  const asked = (request.originalUrl ?? request.url ?? '').split('?')[0].replace(/\/+$/, '');
  return asked.endsWith(path) ? asked : path;
}

type QueryValue = string | string[] | undefined;

/** A query parameter as one string (Express gives a list for a repeated one). */
function one(value: QueryValue): string | undefined {
  const first = Array.isArray(value) ? value[0] : value;
  return first === '' ? undefined : first;
}

/** The routes of the dashboard (see `dashboard-api.ts`), relative to its `path`. */
export class DashboardRoutes {
  constructor(@Inject(DashboardService) private readonly dashboard: DashboardService) {}

  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Secured()
  page(@Req() request: { url?: string; originalUrl?: string }): string {
    const { options, messaging, csrfToken } = this.dashboard;
    return renderPage({
      basePath: servedAt(request, options.path),
      service: messaging?.service ?? '',
      csrfToken,
      readOnly: options.readOnly,
      pollMs: options.pollMs,
    });
  }

  @Get('assets/app.js')
  @Header('Content-Type', 'text/javascript; charset=utf-8')
  @Secured()
  script(): string {
    return DASHBOARD_SCRIPT;
  }

  @Get('assets/app.css')
  @Header('Content-Type', 'text/css; charset=utf-8')
  @Secured()
  style(): string {
    return DASHBOARD_STYLE;
  }

  @Get('api/overview')
  @Secured()
  overview(): Promise<DashboardOverview> {
    return this.dashboard.overview();
  }

  @Get('api/dead-letters')
  @Secured()
  deadLetters(
    @Query('topic') topic: QueryValue,
    @Query('error') error: QueryValue,
    @Query('q') q: QueryValue,
  ): Promise<DeadLetterGroups> {
    return this.dashboard.groups({ topic: one(topic), error: one(error), q: one(q) });
  }

  @Get('api/dead-letters/:id')
  @Secured()
  deadLetter(
    @Param('id') id: string,
    @Query('connection') connection: QueryValue,
  ): Promise<DeadLetterDetail> {
    return this.dashboard.detail(id, one(connection));
  }

  @Action('api/dead-letters/:id/replay')
  replay(
    @Param('id') id: string,
    @Query('connection') connection: QueryValue,
  ): Promise<{ replayed: boolean }> {
    return this.dashboard.replay(id, one(connection));
  }

  @Action('api/groups/:fingerprint/replay')
  replayGroup(@Param('fingerprint') fingerprint: string): DashboardJob {
    return this.dashboard.replayGroup(fingerprint);
  }

  @Action('api/groups/:fingerprint/purge')
  purgeGroup(@Param('fingerprint') fingerprint: string, @Body() body: unknown): DashboardJob {
    return this.dashboard.purgeGroup(fingerprint, body);
  }

  @Get('api/jobs/:id')
  @Secured()
  job(@Param('id') id: string): DashboardJob {
    return this.dashboard.job(id);
  }
}

/**
 * The dashboard's controller for `options`: {@link DashboardRoutes} under `options.path`, behind the
 * app's guard. A class of its own per `forRoot()`, so that two dashboards never share metadata.
 */
export function dashboardController(options: ResolvedDashboardOptions): Type<DashboardRoutes> {
  class MessagingDashboardController extends DashboardRoutes {}
  Controller(options.path)(MessagingDashboardController);
  const guard = accessGuard(options);
  if (guard) UseGuards(guard)(MessagingDashboardController);
  return MessagingDashboardController;
}
