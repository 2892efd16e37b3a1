import type { INestApplicationContext } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import type { MessageHandler } from '@nestjs/microservices';
import { PARAM_ARGS_METADATA, PATTERN_EXTRAS_METADATA } from '@nestjs/microservices/constants';
import { RpcParamtype } from '@nestjs/microservices/enums/rpc-paramtype.enum';
import type { ConsumeDefinition } from '../decorators/consume.decorator';
import { injectedProducers } from '../decorators/producer.decorator';
import { MessagingConfigError } from '../errors/messaging.errors';
import { CONSUME_METADATA, MESSAGING_OPTIONS } from '../messaging.constants';
import { DEFAULT_CONNECTION, type ResolvedMessagingOptions } from '../options/messaging-options';
import { connectionsOf, pickConnection } from '../server/messaging-connection';
import { buildRoutes } from '../server/route';
import {
  type AsyncApiDocument,
  type AsyncApiDocumentOptions,
  buildAsyncApiDocument,
  type ProducerDescription,
  type RouteDescription,
} from './asyncapi-builder';
import type { AsyncApiBroker } from './asyncapi-bindings';
import { SchemaRegistry } from './payload-schema';

export type { AsyncApiDocument, AsyncApiDocumentOptions } from './asyncapi-builder';
export type { AsyncApiBroker } from './asyncapi-bindings';

type Class = abstract new (...args: never[]) => unknown;

/** Where a `@Consume` handler was written, to read its parameter and return types. */
interface HandlerSource {
  readonly type: Class;
  readonly method: string;
}

/**
 * The AsyncAPI 3.0 document of one app, or of a system of apps (one per service), read from the code:
 * each `@Consume` handler is a `receive` operation (with its queue, retry and dead-letter policy),
 * each service's `@Producer`s of one topic a `send` operation, and the `@Payload()` classes'
 * class-validator decorators the message schemas. Nothing is declared twice.
 *
 * The apps are only read: build them with `NestFactory.createApplicationContext()` on an
 * `InMemoryBackend` (no broker, no HTTP, no `listen`), and close them afterwards. A producer's
 * `MessageProducer<T>` type is erased at run time, so the messages of a channel are described by the
 * payload classes of its handlers (in the same app or another app of the system). The bindings are
 * those of `options.broker`; without it, of the apps' backend when it is RabbitMQ, Redis or NATS
 * (with the default exchange or prefix: pass `broker` to name the backend's own), else RabbitMQ's.
 *
 * @example
 * const apps = [orders, payments]; // NestFactory.createApplicationContext(...)
 * const document = asyncApiDocument(apps, { title: 'Shop', version: '1.0.0' });
 * writeFileSync('asyncapi.yaml', YAML.stringify(document));
 */
export function asyncApiDocument(
  apps: INestApplicationContext | readonly INestApplicationContext[],
  options: AsyncApiDocumentOptions,
): AsyncApiDocument {
  const registry = new SchemaRegistry();
  const routes: RouteDescription[] = [];
  const producers: ProducerDescription[] = [];
  let broker = options.broker;
  for (const app of Array.isArray(apps) ? apps : [apps]) {
    const found = describeApp(app as INestApplicationContext, registry);
    routes.push(...found.routes);
    producers.push(...found.producers);
    broker ??= options.exchange === undefined ? brokerOf(found.backend) : undefined;
  }
  const described = { ...options, ...(broker && { broker }) };
  return buildAsyncApiDocument(described, { routes, producers, schemas: registry.schemas() });
}

/** The broker of a backend named `name`, with the default names; none for the in-memory one. */
function brokerOf(name: string | undefined): AsyncApiBroker | undefined {
  return name === 'amqp' || name === 'redis' || name === 'nats' ? { kind: name } : undefined;
}

function describeApp(
  app: INestApplicationContext,
  registry: SchemaRegistry,
): { routes: RouteDescription[]; producers: ProducerDescription[]; backend?: string } {
  let options: ResolvedMessagingOptions;
  let discovery: DiscoveryService;
  try {
    options = app.get<ResolvedMessagingOptions>(MESSAGING_OPTIONS, { strict: false });
    discovery = app.get(DiscoveryService, { strict: false });
  } catch {
    throw new MessagingConfigError(
      'asyncApiDocument() reads apps that import MessagingModule.forRoot(); this one does not',
    );
  }
  const connections = connectionsOf(discovery);
  const optionsOf = (name: string, where: string): ResolvedMessagingOptions =>
    name === DEFAULT_CONNECTION ? options : pickConnection(connections, name, where).options;
  const controllers = classesOf(discovery.getControllers());
  const everything = classesOf([...discovery.getProviders(), ...discovery.getControllers()]);
  return {
    routes: describeRoutes(controllers, optionsOf, registry),
    producers: describeProducers(everything, optionsOf),
    backend: options.backend?.name,
  };
}

/** The distinct classes of Nest's instance wrappers (a class provided by two modules counts once). */
function classesOf(wrappers: readonly { metatype: unknown }[]): Class[] {
  const classes = new Set<Class>();
  for (const { metatype } of wrappers) {
    if (typeof metatype === 'function' && metatype.prototype) classes.add(metatype as Class);
  }
  return [...classes];
}

/**
 * Every `@Consume` handler of the controllers (Nest routes messages to controllers only), resolved by
 * the server's own `buildRoutes`, so queue names and retry policies are those the app would use.
 */
function describeRoutes(
  controllers: readonly Class[],
  optionsOf: (connection: string, where: string) => ResolvedMessagingOptions,
  registry: SchemaRegistry,
): RouteDescription[] {
  const handlers = new Map<string, MessageHandler>();
  // By @Consume definition: a versioned route's handler is Nest's behind its upcasters (same extras).
  const sources = new Map<unknown, HandlerSource>();
  const scanner = new MetadataScanner();
  for (const type of controllers) {
    const prototype = type.prototype as Record<string, unknown>;
    for (const method of scanner.getAllMethodNames(prototype)) {
      const extras = Reflect.getMetadata(PATTERN_EXTRAS_METADATA, prototype[method] as object) as
        Record<string, unknown> | undefined;
      const definition = extras?.[CONSUME_METADATA] as ConsumeDefinition | undefined;
      if (!definition) continue;
      // buildRoutes reads a handler's extras only; this one is never called.
      const handler: MessageHandler = Object.assign(() => Promise.resolve(undefined), {
        extras: { [CONSUME_METADATA]: definition },
      });
      handlers.set(`${type.name}.${method}#${handlers.size}`, handler);
      sources.set(definition, { type, method });
    }
  }
  return buildRoutes(handlers, optionsOf).map((route) => {
    const { type, method } = sources.get(route.handler.extras?.[CONSUME_METADATA]) as HandlerSource;
    const { name, spec, retry, deadLetter, idempotent, connection, ordered, batch, versions } =
      route;
    const returned: unknown = Reflect.getMetadata('design:returntype', type.prototype, method);
    return {
      name,
      spec,
      retry,
      deadLetter,
      idempotent,
      connection,
      ordered,
      ...(batch && { batch }),
      ...(versions && { version: versions.version, upcastFrom: versions.upcastFrom }),
      // A batch handler's @Payload() is an array: each message is one item (of batch.itemType).
      payload: registry.payloadOf(batch ? batch.itemType : payloadType(type, method)),
      // A handler's return value is the reply to a request; an async one's type is erased (Promise).
      reply: registry.payloadOf(returned),
    };
  });
}

/**
 * The declared type of a handler's `@Payload()` parameter (the first parameter when it has no
 * parameter decorators, as Nest passes `(payload, context)`); `undefined` for `@Payload('field')`.
 */
function payloadType(type: Class, method: string): unknown {
  const args = Reflect.getMetadata(PARAM_ARGS_METADATA, type, method) as
    Record<string, { index: number; data?: unknown }> | undefined;
  const paramTypes = (Reflect.getMetadata('design:paramtypes', type.prototype, method) ??
    []) as unknown[];
  if (!args) return paramTypes[0];
  const payload = Object.entries(args).find(
    ([key]) => key.split(':')[0] === String(RpcParamtype.PAYLOAD),
  )?.[1];
  return payload && payload.data === undefined ? paramTypes[payload.index] : undefined;
}

/**
 * Every `@Producer` injection of the app: a constructor parameter or property whose injection token
 * is one that `@Producer` requested. (`MessagingModule` provides a producer for every target any
 * `@Producer` of the process asked for; what an app sends is what its classes inject.)
 */
function describeProducers(
  classes: readonly Class[],
  optionsOf: (connection: string, where: string) => ResolvedMessagingOptions,
): ProducerDescription[] {
  const producers: ProducerDescription[] = [];
  for (const type of classes) {
    for (const [, target] of injectedProducers(type)) {
      const connection = target.connection ?? DEFAULT_CONNECTION;
      const options = optionsOf(connection, `@Producer in ${type.name}`);
      producers.push({
        connection,
        service: options.service,
        owner: type.name,
        topic: target.topic,
        queue: target.queue,
        allowUnroutable: target.allowUnroutable ?? options.allowUnroutable,
        ...(target.version !== undefined && { version: target.version }),
      });
    }
  }
  return producers;
}
