/**
 * `nest-messaging/terminus`: messaging in `@nestjs/terminus` health checks. An entry point of its
 * own, so that `@nestjs/terminus` (an optional peer) is loaded only by the apps that use it.
 */
export { MessagingHealthIndicator } from './messaging.health-indicator';
