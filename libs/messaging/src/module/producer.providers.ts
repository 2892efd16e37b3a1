/**
 * The providers of `@Producer`: one `MessageProducer` per target some class asked for, added to the
 * default connection's module when Nest scans it, and `ProducerConnections`, which finds the
 * publisher of a producer on a named connection once the app has started (and fails start-up when
 * a class injects one whose connection is missing).
 */
import {
  Injectable,
  type DynamicModule,
  type OnApplicationBootstrap,
  type Provider,
} from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import {
  getProducerToken,
  getRequestedProducerTargets,
  injectedProducers,
  type ProducerTarget,
} from '../decorators/producer.decorator';
import { DEFAULT_CONNECTION } from '../options/messaging-options';
import { MessageProducer } from '../producer/message-producer';
import { MessagingPublisher } from '../producer/messaging.publisher';
import { connectionsOf, pickConnection } from '../server/messaging-connection';

/**
 * Adds one `MessageProducer` provider per `@Producer` target. Read when Nest scans the module, by
 * which time every class using `@Producer` has been defined, whatever the import order. A producer
 * on a named connection finds it when the app has started (or at its first publish, if earlier).
 */
export function withProducers(module: DynamicModule): DynamicModule {
  const providers = module.providers ?? [];
  const exports = module.exports ?? [];
  return {
    ...module,
    get providers(): Provider[] {
      return [...providers, ProducerConnections, ...producerProviders()];
    },
    get exports() {
      return [...exports, ...producerProviders().map((p) => (p as { provide: string }).provide)];
    },
  };
}

function producerProviders(): Provider[] {
  return [...getRequestedProducerTargets()].map(([token, target]) => ({
    provide: token,
    useFactory: (publisher: MessagingPublisher, connections: ProducerConnections) =>
      target.connection === undefined || target.connection === DEFAULT_CONNECTION
        ? new MessageProducer(target, publisher)
        : new MessageProducer(target, connections.publisherFor(target)),
    inject: [MessagingPublisher, ProducerConnections],
  }));
}

/**
 * The publishers of `@Producer`s on named connections. Nest may create a producer before the module of
 * its connection, so each is looked up when the app has started, which fails start-up when a class
 * of the app injects one whose connection is missing, or at its first publish if that comes earlier.
 */
@Injectable()
class ProducerConnections implements OnApplicationBootstrap {
  /** Each named-connection producer's token, and the lookup of its publisher. */
  private readonly wanted = new Map<string, () => MessagingPublisher>();

  constructor(private readonly discovery: DiscoveryService) {}

  /** A publisher that finds `target`'s connection on first use. */
  publisherFor(target: ProducerTarget): MessagingPublisher {
    let publisher: MessagingPublisher | undefined;
    const resolve = (): MessagingPublisher =>
      (publisher ??= pickConnection(
        connectionsOf(this.discovery),
        target.connection as string,
        `@Producer(${JSON.stringify(target)})`,
      ).publisher);
    this.wanted.set(getProducerToken(target), resolve);
    // Once the app started (the usual case) it is a field read; before, a throw becomes the rejection.
    return {
      publish: (...args: Parameters<MessagingPublisher['publish']>) =>
        publisher
          ? publisher.publish(...args)
          : Promise.resolve().then(() => resolve().publish(...args)),
      request: (...args: Parameters<MessagingPublisher['request']>) =>
        publisher
          ? publisher.request(...args)
          : Promise.resolve().then(() => resolve().request(...args)),
    } as MessagingPublisher;
  }

  /**
   * Looks up the connection of every producer some class of this app injects (Nest makes every
   * producer `@Producer` asked for anywhere in the process; only the injected ones must work).
   */
  onApplicationBootstrap(): void {
    const injected = new Set<string>();
    for (const { metatype } of [
      ...this.discovery.getProviders(),
      ...this.discovery.getControllers(),
    ]) {
      if (typeof metatype !== 'function') continue;
      for (const [token] of injectedProducers(metatype)) injected.add(token);
    }
    for (const [token, resolve] of this.wanted) if (injected.has(token)) resolve();
  }
}
