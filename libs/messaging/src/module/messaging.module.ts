import {
  ConfigurableModuleBuilder,
  type DynamicModule,
  Inject,
  Injectable,
  Logger,
  Module,
  type OnApplicationShutdown,
  type OnModuleInit,
  type Provider,
} from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import type { BrokerBackend } from '../backend/broker-backend.interface';
import { InMemoryBackend } from '../backends/memory/in-memory.backend';
import { MessagingClient } from '../client/messaging.client';
import { MessageCodec } from '../codec/message-codec';
import { DeadLetterService } from '../dead-letters/dead-letter.service';
import { getRequestedProducerTargets } from '../decorators/producer.decorator';
import { MESSAGING_BACKEND, MESSAGING_OPTIONS, MESSAGING_STORE } from '../messaging.constants';
import type { MessageStore } from '../store/message-store';
import { InMemoryMessageStore } from '../store/in-memory.store';
import { OutboxRelay } from '../store/outbox-relay';
import { MessagingTransactions } from '../store/transactions';
import { MessageProducer } from '../producer/message-producer';
import { MessagingPublisher } from '../producer/messaging.publisher';
import { MessagingServer } from '../server/messaging.server';
import { MessagingHealthService } from '../health/messaging-health.service';
import { MessagingWiringCheck, SERVER_START_GRACE_MS } from './messaging-wiring.check';
import { BackendErrorLog } from './backend-error-log';
import { MessagingInstruments } from '../observability/messaging-metrics';
import { MessagingTracer } from '../observability/messaging-tracer';
import {
  type MessagingModuleOptions,
  type ResolvedMessagingOptions,
  resolveMessagingOptions,
} from '../options/messaging-options';

const { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN } =
  new ConfigurableModuleBuilder<MessagingModuleOptions>()
    .setClassMethodName('forRoot')
    .setExtras({}, (definition) => ({ ...definition, global: true }))
    .build();

/**
 * Connects the backend when the app starts and closes it after the server drained, on shutdown; logs
 * the errors it reports meanwhile (rate-limited), whether or not the application listens to them.
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
    private readonly relay: OutboxRelay,
    private readonly instruments: MessagingInstruments,
  ) {}

  async onModuleInit(): Promise<void> {
    this.detachErrors = this.backend.on('error', (error) => this.errors.report(error));
    let lost = false;
    this.detachStatus = this.backend.on('status', (status) => {
      if (status === 'reconnecting' || status === 'disconnected') lost = true;
      else if (status === 'connected' && lost) {
        lost = false;
        this.instruments.reconnected(this.backend.name);
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
    {
      provide: MESSAGING_OPTIONS,
      useFactory: (raw: MessagingModuleOptions) => resolveMessagingOptions(raw),
      inject: [MODULE_OPTIONS_TOKEN],
    },
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
    {
      provide: MessagingInstruments,
      useFactory: (options: ResolvedMessagingOptions) =>
        new MessagingInstruments(options.metrics, (error) =>
          new Logger('Messaging').warn(
            `The metrics sink threw (${error instanceof Error ? error.message : JSON.stringify(error)}); measurements are dropped while it does, messages are not affected`,
          ),
        ),
      inject: [MESSAGING_OPTIONS],
    },
    {
      provide: MessagingTracer,
      useFactory: (options: ResolvedMessagingOptions, backend: BrokerBackend) =>
        new MessagingTracer(backend.name === 'amqp' ? 'rabbitmq' : backend.name, {
          spans: options.tracing,
          scope: options.requestContext,
        }),
      inject: [MESSAGING_OPTIONS, MESSAGING_BACKEND],
    },
    MessagingPublisher,
    MessagingServer,
    MessagingClient,
    DeadLetterService,
    MessagingHealthService,
    MessagingTransactions,
    OutboxRelay,
    MessagingLifecycle,
    MessagingWiringCheck,
    { provide: SERVER_START_GRACE_MS, useValue: 5_000 },
  ],
  exports: EXPORTS,
})
export class MessagingModule extends ConfigurableModuleClass {
  /** Configures messaging with options known up front. */
  static override forRoot(options: MessagingModuleOptions): DynamicModule {
    return withProducers(super.forRoot(options));
  }

  /** Configures messaging from other providers (`imports`, `inject`, `useFactory`). */
  static override forRootAsync(
    options: Parameters<typeof ConfigurableModuleClass.forRootAsync>[0],
  ): DynamicModule {
    return withProducers(super.forRootAsync(options));
  }
}

/**
 * Adds one `MessageProducer` provider per `@Producer` target. Read when Nest scans the module, by
 * which time every class using `@Producer` has been defined, whatever the import order.
 */
function withProducers(module: DynamicModule): DynamicModule {
  const providers = module.providers ?? [];
  const exports = module.exports ?? [];
  return {
    ...module,
    get providers(): Provider[] {
      return [...providers, ...producerProviders()];
    },
    get exports() {
      return [...exports, ...producerProviders().map((p) => (p as { provide: string }).provide)];
    },
  };
}

function producerProviders(): Provider[] {
  return [...getRequestedProducerTargets()].map(([token, target]) => ({
    provide: token,
    useFactory: (publisher: MessagingPublisher) => new MessageProducer(target, publisher),
    inject: [MessagingPublisher],
  }));
}
