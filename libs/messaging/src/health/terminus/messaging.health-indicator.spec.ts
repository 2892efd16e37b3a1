import { HealthIndicatorService } from '@nestjs/terminus';
import type { MessagingHealth, MessagingHealthService } from '../messaging-health.service';
import { MessagingHealthIndicator } from './messaging.health-indicator';

const UP: MessagingHealth = { status: 'up', backend: 'amqp', connection: 'connected' };

describe('MessagingHealthIndicator', () => {
  const indicatorOf = (health: MessagingHealth) =>
    new MessagingHealthIndicator(new HealthIndicatorService(), {
      check: () => health,
    } as unknown as MessagingHealthService);

  it.each<[string, MessagingHealth, string]>([
    ['connected, every consumer attached', UP, 'up'],
    ['the broker gone', { ...UP, status: 'down', connection: 'reconnecting' }, 'down'],
    ['publishers blocked by the broker', { ...UP, blocked: true }, 'degraded'],
    [
      'the outbox failing',
      { ...UP, outbox: { pending: 3, lastError: 'no queue', failingSince: 1 } },
      'degraded',
    ],
    ['the outbox waiting but publishing', { ...UP, outbox: { pending: 3 } }, 'up'],
  ])('%s: %s', (_case, health, expected) => {
    const result = indicatorOf(health).isHealthy('messaging');
    const { status: _status, ...details } = health;
    expect(result).toEqual({ messaging: { status: expected, ...details } });
  });
});
