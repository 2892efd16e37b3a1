import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper';
import { PATTERN_EXTRAS_METADATA } from '@nestjs/microservices/constants';
import { CONSUME_METADATA, MESSAGING_OPTIONS } from '../messaging.constants';
import type { ResolvedMessagingOptions } from '../options/messaging-options';
import { MessagingServer } from './messaging.server';

/**
 * Injection token of how long after start-up an app with `@Consume` handlers may take to start
 * `MessagingServer` before it is warned and health says `down` (5 s; tests override it).
 */
export const SERVER_START_GRACE_MS = Symbol('SERVER_START_GRACE_MS');

/**
 * Catches the two day-one mistakes that would otherwise leave messages silently unconsumed, and
 * logs a warning that says how to fix each:
 * - `@Consume` on a provider: Nest routes messages only to controllers' methods;
 * - `@Consume` handlers in an app that never started `MessagingServer` (`connectMicroservice`),
 *   unless it is producer-only (`consumers: false`). `MessagingHealthService` reads the same
 *   finding ({@link unstarted}): health is `down` with it as the reason.
 */
@Injectable()
export class MessagingWiringCheck implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Messaging');
  private timer?: NodeJS.Timeout;
  /** The handlers waiting for the server, and since when (epoch ms): set at start-up, if any. */
  private waiting?: { readonly handlers: readonly string[]; readonly since: number };

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly server: MessagingServer,
    @Inject(SERVER_START_GRACE_MS) private readonly graceMs: number,
    @Inject(MESSAGING_OPTIONS) private readonly options: ResolvedMessagingOptions,
  ) {}

  onApplicationBootstrap(): void {
    const controllers = this.discovery.getControllers();
    const controllerClasses = new Set(controllers.map((c) => c.metatype));
    for (const provider of this.discovery.getProviders()) {
      if (controllerClasses.has(provider.metatype)) continue;
      for (const handler of this.consumeHandlers(provider)) {
        const owner = handler.split('.')[0];
        this.logger.warn(
          `@Consume on ${handler} is ignored: ${owner} is a provider, and Nest routes messages only to ` +
            `controllers. Decorate it with @Controller() and list it in the controllers of its module.`,
        );
      }
    }
    const handlers = controllers.flatMap((c) => this.consumeHandlers(c));
    // A producer-only instance (consumers: false) consumes nothing on purpose.
    if (handlers.length === 0 || this.server.isListening || !this.options.consumers) return;
    // The server may be started just after start-up (app.listen() before startAllMicroservices()).
    this.waiting = { handlers, since: Date.now() };
    this.timer = setTimeout(() => {
      if (!this.server.isListening) this.logger.warn(neverStarted(handlers));
    }, this.graceMs).unref();
  }

  /**
   * Why the app consumes nothing at `now` although it declares `@Consume` handlers: `MessagingServer`
   * was never started, and the grace period since start-up (`SERVER_START_GRACE_MS`) is over.
   * Undefined otherwise: no handlers, producer-only, started, or still within the grace period.
   */
  unstarted(now: number = Date.now()): string | undefined {
    const waiting = this.waiting;
    if (!waiting || this.server.isListening || now - waiting.since < this.graceMs) return undefined;
    return neverStarted(waiting.handlers);
  }

  onApplicationShutdown(): void {
    clearTimeout(this.timer);
  }

  /** `Class.method` of every `@Consume` method of a controller or provider. */
  private consumeHandlers(wrapper: InstanceWrapper): string[] {
    const type = wrapper.metatype as (new (...args: unknown[]) => unknown) | undefined;
    if (typeof type !== 'function' || !type.prototype) return [];
    return this.scanner
      .getAllMethodNames(type.prototype)
      .filter((name) => {
        const method = (type.prototype as Record<string, unknown>)[name];
        return Reflect.getMetadata(PATTERN_EXTRAS_METADATA, method as object)?.[CONSUME_METADATA];
      })
      .map((name) => `${type.name}.${name}`);
  }
}

/** What is wrong, and the two lines that fix it. */
function neverStarted(handlers: readonly string[]): string {
  return (
    `${handlers.length} @Consume handler(s) declared (${handlers.join(', ')}) but the MessagingServer ` +
    'transport was never started: in main.ts, after NestFactory.create(), call ' +
    'app.connectMicroservice({ strategy: app.get(MessagingServer) }) and await app.startAllMicroservices()'
  );
}
