import { type DynamicModule, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { dashboardController } from './dashboard.controller';
import { DashboardPostGuard } from './dashboard-guards';
import { type MessagingDashboardOptions, resolveDashboardOptions } from './dashboard-options';
import { DASHBOARD_OPTIONS, DashboardService } from './dashboard.service';

/**
 * A web page of the app's messaging, served by the app's own HTTP server (Express or Fastify) at
 * `path`: each handler and its state and counters, the dead letters grouped by error with Replay
 * and Purge, the outbox and the broker connections, refreshed every `pollMs`. Nothing is loaded from
 * outside the service, and nothing is built in the app. It needs a guard, or `public: true` said
 * explicitly; `readOnly` hides the actions. Import it beside `MessagingModule.forRoot()`.
 *
 * Importing it adds in-process counters to the app's measurements: a few additions per settled
 * delivery (see `DashboardCounters`); an app that does not import it pays nothing.
 *
 * @example
 * MessagingDashboardModule.forRoot({ guard: AdminGuard })
 * MessagingDashboardModule.forRoot({ path: '/ops/messaging', canActivate: (req) => req.headers['x-admin'] === secret, readOnly: true })
 */
@Module({})
export class MessagingDashboardModule {
  /** The dashboard with `options` (checked now: a `MessagingConfigError` names what to fix). */
  static forRoot(options: MessagingDashboardOptions): DynamicModule {
    const resolved = resolveDashboardOptions(options);
    return {
      module: MessagingDashboardModule,
      imports: [DiscoveryModule, ...resolved.imports],
      controllers: [dashboardController(resolved)],
      providers: [
        { provide: DASHBOARD_OPTIONS, useValue: resolved },
        DashboardService,
        DashboardPostGuard,
      ],
    };
  }
}
