import { Controller, type DynamicModule, Get, Header, Inject, Module } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { PrometheusMessagingMetrics } from '@app/messaging';
import { MessagingHealthIndicator } from '@app/messaging/terminus';

/**
 * `GET /health` (`@nestjs/terminus`: 200 while messaging is up or degraded, 503 once the broker is
 * gone or a handler has lost its consumer) and `GET /metrics` (Prometheus text) of a sample service.
 */
@Controller()
class OperationsController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly messaging: MessagingHealthIndicator,
    @Inject(PrometheusMessagingMetrics) private readonly metrics: PrometheusMessagingMetrics,
  ) {}

  @Get('health')
  @HealthCheck()
  check() {
    return this.health.check([() => this.messaging.isHealthy('messaging')]);
  }

  @Get('metrics')
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  scrape(): Promise<string> {
    return this.metrics.registry.metrics();
  }
}

/** Health and metrics endpoints over the `metrics` given to `MessagingModule.forRoot({ metrics })`. */
@Module({})
export class OperationsModule {
  static register(metrics: PrometheusMessagingMetrics): DynamicModule {
    return {
      module: OperationsModule,
      imports: [TerminusModule.forRoot({ logger: false })],
      controllers: [OperationsController],
      providers: [
        MessagingHealthIndicator,
        { provide: PrometheusMessagingMetrics, useValue: metrics },
      ],
    };
  }
}
