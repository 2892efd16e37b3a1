import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { MessagingHealthService } from '../messaging-health.service';

/**
 * Messaging in a `@nestjs/terminus` health check: `down` while the broker is not connected, a
 * handler has been without its consumer for `health.consumerGraceMs`, or `@Consume` handlers never got
 * a started `MessagingServer` (the details' `reason` says how to fix it); `degraded` (still serving:
 * HTTP 200) while the broker blocks publishers or the outbox relay cannot publish; `up` otherwise.
 * The details are those of `MessagingHealthService.check()`: connection, each handler's consumer,
 * the outbox backlog.
 *
 * @example
 * // imports: [TerminusModule], providers: [MessagingHealthIndicator]
 * @Get('health') @HealthCheck()
 * check() {
 *   return this.health.check([() => this.messaging.isHealthy('messaging')]);
 * }
 */
@Injectable()
export class MessagingHealthIndicator {
  constructor(
    private readonly indicators: HealthIndicatorService,
    private readonly messaging: MessagingHealthService,
  ) {}

  isHealthy<const Key extends string = 'messaging'>(key: Key = 'messaging' as Key) {
    const { status, ...details } = this.messaging.check();
    const session = this.indicators.check(key);
    if (status === 'down') return session.down(details);
    if (details.blocked === true || details.outbox?.lastError !== undefined) {
      return session.degraded(details);
    }
    return session.up(details);
  }
}
