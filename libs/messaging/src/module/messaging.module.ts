import {
  ConfigurableModuleBuilder,
  type DynamicModule,
  Inject,
  Injectable,
  Logger,
  Module,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  type OnModuleInit,
  type Provider,
} from '@nestjs/common';
import { DiscoveryModule, DiscoveryService } from '@nestjs/core';
import type { BrokerBackend } from '../backend/broker-backend.interface';
import { InMemoryBackend } from '../backends/memory/in-memory.backend';
import { MessagingClient } from '../client/messaging.client';
import { MessageCodec } from '../codec/message-codec';
import { DeadLetterService } from '../dead-letters/dead-letter.service';
import { MessagingConfigError } from '../errors/messaging.errors';
import {
  checkConnections,
  connectionsOf,
  connectionToken,
  MessagingConnection,
} from '../server/messaging-connection';
import { MESSAGING_BACKEND, MESSAGING_OPTIONS, MESSAGING_STORE } from '../messaging.constants';
import type { MessageStore } from '../store/message-store';
import { InMemoryMessageStore } from '../store/in-memory.store';
import { OutboxRelay } from '../store/outbox-relay';
import { MessagingTransactions } from '../store/transactions';
import { MessagingPublisher } from '../producer/messaging.publisher';
import { MessagingServer } from '../server/messaging.server';
import { MessagingHealthService } from '../health/messaging-health.service';
import { MessagingWiringCheck, SERVER_START_GRACE_MS } from '../server/messaging-wiring.check';
import { BackendErrorLog } from './backend-error-log';
import { withProducers } from './producer.providers';
import { MessagingInstruments } from '../observability/messaging-metrics';
import { MessagingTracer } from '../observability/messaging-tracer';
import {
  checkConnectionName,
  DEFAULT_CONNECTION,
  type MessagingModuleOptions,
  type ResolvedMessagingOptions,
  resolveMessagingOptions,
} from '../options/messaging-options';

const { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN } =
  new ConfigurableModuleBuilder<MessagingModuleOptions>()
    .setClassMethodName('forRoot')
    .setExtras({}, (definition) => ({ ...definition, global: true }))
    .build();

/** The connection of the module a provider belongs to (each `forRoot()` has its own). */
const OWN_CONNECTION = Symbol('OWN_CONNECTION');

/** A named `forRoot({ name })`'s options, before they are resolved. */
const NAMED_OPTIONS = Symbol('NAMED_OPTIONS');

/**
 * Checks the app's connections (one per name, a default one among them), connects the backend when
 * the app starts and closes it after the server drained, on shutdown; logs the errors it reports
 * meanwhile (rate-limited), whether or not the application listens to them.
 */
@Injectable()
class MessagingLifecycle implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Messaging');
  private readonly errors = new BackendErrorLog((line) => this.logger.warn(line));
  private detachErrors?: () => void;
  private detachStatus?: () => void;

  constructor(
    @Inject(MESSAGING_BACKEND) private readonly backend: BrokerBackend,
    @Inject(MESSAGING_STORE) private readonly store: MessageStore,
    protected readonly relay: OutboxRelay,
    private readonly instruments: MessagingInstruments,
    private readonly discovery: DiscoveryService,
    @Inject(OWN_CONNECTION) private readonly connection: MessagingConnection,
  ) {}

  async onModuleInit(): Promise<void> {
    checkConnections(connectionsOf(this.discovery));
    this.detachErrors = this.backend.on('error', (error) => this.errors.report(error));
    let lost = false;
    this.detachStatus = this.backend.on('status', (status) => {
      if (status === 'reconnecting' || status === 'disconnected') lost = true;
      else if (status === 'connected' && lost) {
        lost = false;
        this.instruments.reconnected(this.backend.name, this.connection.name);
      }
    });
    await this.store.init();
    await this.backend.connect();
  }

  // Nest closes microservices (MessagingServer drains its handlers) before shutdown hooks run; the
  // relay then sends what the last handlers committed, before the backend closes.
  async onApplicationShutdown(): Promise<void> {
    await this.relay.stop();
    await this.backend.close();
    await this.store.close();
    this.detachErrors?.();
    this.detachStatus?.();
    this.errors.flush();
  }
}

/** The lifecycle of a named connection, which also starts its outbox relay (not a provider there). */
class NamedConnectionLifecycle extends MessagingLifecycle implements OnApplicationBootstrap {
  onApplicationBootstrap(): void {
    this.relay.onApplicationBootstrap();
  }
}

function instrumentsFor(options: ResolvedMessagingOptions): MessagingInstruments {
  return new MessagingInstruments(options.metrics, (error) =>
    new Logger('Messaging').warn(
      `The metrics sink threw (${error instanceof Error ? error.message : JSON.stringify(error)}); measurements are dropped while it does, messages are not affected`,
    ),
  );
}

function tracerFor(options: ResolvedMessagingOptions, backend: BrokerBackend): MessagingTracer {
  return new MessagingTracer(backend.name === 'amqp' ? 'rabbitmq' : backend.name, {
    spans: options.tracing,
    scope: options.requestContext,
    instrumented: () => backend.clientInstrumented === true,
  });
}

/**
 * What every `forRoot()` provides for its own connection, from its options (`optionsToken`): the
 * backend, store, codec, instruments, tracer, publisher, transactions, outbox relay and lifecycle,
 * and the connection itself under {@link OWN_CONNECTION}.
 */
function connectionProviders(resolvedFrom: Provider): Provider[] {
  return [
    resolvedFrom,
    {
      provide: MESSAGING_BACKEND,
      useFactory: (options: ResolvedMessagingOptions) => options.backend ?? new InMemoryBackend(),
      inject: [MESSAGING_OPTIONS],
    },
    {
      provide: MESSAGING_STORE,
      useFactory: (options: ResolvedMessagingOptions) =>
        options.store ?? new InMemoryMessageStore(),
      inject: [MESSAGING_OPTIONS],
    },
    {
      provide: MessageCodec,
      useFactory: (options: ResolvedMessagingOptions) => new MessageCodec(options.codec),
      inject: [MESSAGING_OPTIONS],
    },
    { provide: MessagingInstruments, useFactory: instrumentsFor, inject: [MESSAGING_OPTIONS] },
    {
      provide: MessagingTracer,
      useFactory: tracerFor,
      inject: [MESSAGING_OPTIONS, MESSAGING_BACKEND],
    },
    {
      provide: OWN_CONNECTION,
      useFactory: (
        options: ResolvedMessagingOptions,
        backend: BrokerBackend,
        codec: MessageCodec,
        store: MessageStore,
        publisher: MessagingPublisher,
        tracer: MessagingTracer,
      ) => new MessagingConnection(options, backend, codec, store, publisher, tracer),
      inject: [
        MESSAGING_OPTIONS,
        MESSAGING_BACKEND,
        MessageCodec,
        MESSAGING_STORE,
        MessagingPublisher,
        MessagingTracer,
      ],
    },
    MessagingPublisher,
    MessagingTransactions,
    OutboxRelay,
    MessagingLifecycle,
  ];
}

const EXPORTS = [
  MESSAGING_OPTIONS,
  MESSAGING_BACKEND,
  MessageCodec,
  MessagingPublisher,
  MessagingServer,
  MessagingClient,
  DeadLetterService,
  MessagingHealthService,
  MESSAGING_STORE,
  MessagingTransactions,
  OutboxRelay,
  connectionToken(DEFAULT_CONNECTION),
];

/**
 * Messaging for a Nest app: `@Consume` handlers, `@Producer` publishers, `MessagingClient`,
 * retries and dead letters over one `BrokerBackend`. Global: import it once, in the root module.
 *
 * @example
 * MessagingModule.forRoot({ service: 'payments', backend: new AmqpBackend({ url }), retry: { maxAttempts: 3 } })
 *
 * MessagingModule.forRootAsync({
 *   inject: [ConfigService],
 *   useFactory: (config: ConfigService) => ({ service: 'payments', backend: new AmqpBackend({ url: config.get('BROKER_URL') }) }),
 * })
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    ...connectionProviders({
      provide: MESSAGING_OPTIONS,
      useFactory: (raw: MessagingModuleOptions) => resolveDefaultOptions(raw),
      inject: [MODULE_OPTIONS_TOKEN],
    }),
    { provide: connectionToken(DEFAULT_CONNECTION), useExisting: OWN_CONNECTION },
    MessagingServer,
    MessagingClient,
    DeadLetterService,
    MessagingHealthService,
    MessagingWiringCheck,
    { provide: SERVER_START_GRACE_MS, useValue: 5_000 },
  ],
  exports: EXPORTS,
})
export class MessagingModule extends ConfigurableModuleClass {
  /**
   * Configures messaging with options known up front. With a `name`, a further connection (another
   * broker) beside the default one, picked by `@Consume(..., { connection })` and `@Producer({ connection })`.
   */
  static override forRoot(options: MessagingModuleOptions): DynamicModule {
    const name = nameOf(options);
    if (name !== DEFAULT_CONNECTION) {
      return namedConnection(name, { provide: NAMED_OPTIONS, useValue: options }, []);
    }
    return withProducers(super.forRoot(options));
  }

  /**
   * Configures messaging from other providers (`imports`, `inject`, `useFactory`). A further
   * connection names itself here, beside the factory: `forRootAsync({ name: 'events', useFactory })`.
   */
  static override forRootAsync(options: MessagingModuleAsyncOptions): DynamicModule {
    const { name: given, ...rest } = options;
    const name =
      checkConnectionName(given, 'MessagingModule.forRootAsync(): name') ?? DEFAULT_CONNECTION;
    if (name !== DEFAULT_CONNECTION) {
      if (!rest.useFactory) {
        throw new MessagingConfigError(
          `MessagingModule.forRootAsync({ name: '${name}' }) needs a useFactory that returns the connection's options`,
        );
      }
      const raw = {
        provide: NAMED_OPTIONS,
        useFactory: rest.useFactory,
        inject: rest.inject ?? [],
      };
      return namedConnection(name, raw, rest.imports ?? []);
    }
    return withProducers(super.forRootAsync(rest));
  }
}

/** The options of `forRootAsync()`: Nest's, and the connection's `name`, which tokens depend on. */
export type MessagingModuleAsyncOptions = Parameters<
  typeof ConfigurableModuleClass.forRootAsync
>[0] & {
  /** The connection's name; see `MessagingModuleOptions.name`. @default 'default' */
  name?: string;
};

/** The `name` of `forRoot()` options, checked before the rest (it decides which module to build). */
function nameOf(options: MessagingModuleOptions): string {
  const name = (options as MessagingModuleOptions | undefined)?.name;
  return checkConnectionName(name, 'MessagingModule.forRoot(): name') ?? DEFAULT_CONNECTION;
}

/** The default connection's options: the unnamed `forRoot()` (or `forRootAsync()`'s factory). */
function resolveDefaultOptions(raw: MessagingModuleOptions): ResolvedMessagingOptions {
  const options = resolveMessagingOptions(raw);
  if (options.name !== DEFAULT_CONNECTION) {
    throw new MessagingConfigError(
      `MessagingModule.forRootAsync(): the factory returned name '${options.name}'; a named connection gives its name beside the factory: forRootAsync({ name: '${options.name}', useFactory })`,
    );
  }
  return options;
}

/** A connection imported with `forRoot({ name })`: its backend and publisher, nothing app-wide. */
@Module({})
class MessagingConnectionModule {}

/**
 * A named connection is two providers under tokens of its own: the connection (options, backend,
 * store, codec, publisher) and its lifecycle. Nothing under the default connection's tokens, so
 * `app.get(MessagingPublisher)` and the like keep finding the default connection's.
 */
function namedConnection(
  name: string,
  raw: Provider,
  imports: DynamicModule['imports'],
): DynamicModule {
  const token = connectionToken(name);
  return {
    module: MessagingConnectionModule,
    global: true,
    imports: [DiscoveryModule, ...(imports ?? [])],
    providers: [
      raw,
      {
        provide: token,
        useFactory: (options: MessagingModuleOptions) => buildConnection(name, options),
        inject: [NAMED_OPTIONS],
      },
      {
        provide: `${token}.lifecycle`,
        useFactory: (connection: MessagingConnection, discovery: DiscoveryService) => {
          const { options, store, backend } = connection;
          const instruments = instrumentsFor(options);
          const relay = new OutboxRelay(options, store, backend, instruments);
          return new NamedConnectionLifecycle(
            backend,
            store,
            relay,
            instruments,
            discovery,
            connection,
          );
        },
        inject: [token, DiscoveryService],
      },
    ],
    exports: [token],
  };
}

/** The connection of `forRoot({ name })` (or of `forRootAsync({ name })`'s factory result). */
function buildConnection(name: string, raw: MessagingModuleOptions): MessagingConnection {
  const options = resolveMessagingOptions({ ...raw, name: raw?.name ?? name });
  if (options.name !== name) {
    throw new MessagingConfigError(
      `MessagingModule.forRootAsync({ name: '${name}' }): the factory returned name '${options.name}'; drop it or make them equal`,
    );
  }
  const backend = options.backend ?? new InMemoryBackend();
  const store = options.store ?? new InMemoryMessageStore();
  const codec = new MessageCodec(options.codec);
  const tracer = tracerFor(options, backend);
  const publisher = new MessagingPublisher(
    options,
    backend,
    codec,
    instrumentsFor(options),
    tracer,
  );
  return new MessagingConnection(options, backend, codec, store, publisher, tracer);
}
