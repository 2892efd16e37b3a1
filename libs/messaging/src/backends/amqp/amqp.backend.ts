import { Logger } from '@nestjs/common';
import type { ChannelModel } from 'amqplib';
import { BackendEventHub } from '../../backend/backend-events';
import { loadBrokerClient } from '../../backend/broker-client';
import { AmqplibInstrumentationProbe } from './amqp-instrumentation';
import { ConsumerSet } from '../../backend/consumer-set';
import {
  type BackendEvents,
  type BackendPublishOptions,
  type BackendRequestOptions,
  type BackendStatus,
  type BackendSubscription,
  type BrokerBackend,
  type ConsumerState,
  type DeadLetterAdmin,
  type DeliveryHandler,
  type IncomingReply,
  type OutgoingMessage,
  type SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { guardDeadLetters } from '../../backend/dead-letter-admin';
import { MessagingHeaders } from '../../backend/message-headers';
import { closedError, requestRefusal, messageTarget } from '../../backend/request-guards';
import { UnroutableError } from '../../errors/messaging.errors';
import {
  resolveAmqpOptions,
  type AmqpBackendOptions,
  type ResolvedAmqpOptions,
} from './amqp-backend.options';
import { AmqpConnectionManager, type AmqplibModule } from './amqp-connection';
import { AmqpConsumer } from './amqp-consumer';
import { AmqpDeadLetters } from './amqp-dead-letters';
import { publishProperties } from './amqp-messages';
import { AmqpPublisher } from './amqp-publisher';
import type { PublishCommand } from './amqp-publish-command';
import { AmqpRequester } from './amqp-requester';
import { AmqpDelays } from './amqp-delays';
import { DUE_HEADER } from './amqp-parking';
import { assertMainExchange, assertRequestExchange, queueExists } from './amqp-topology';

/**
 * RabbitMQ backend over `amqplib`: durable topic routing, publisher confirms, retries and delays held
 * exactly by binary delay levels (retries go back to the failing queue only), per-service dead-letter queues, direct reply-to requests, and
 * reconnection with failover. The topology is described in `amqp-topology.ts`.
 *
 * `amqplib` is loaded when this class is constructed, so apps on another backend do not need it.
 *
 * @example
 * MessagingModule.forRoot({ service: 'payments', backend: new AmqpBackend({ url: process.env.BROKER_URL }) });
 */
export class AmqpBackend implements BrokerBackend {
  readonly name = 'amqp';
  private readonly logger = new Logger(AmqpBackend.name);
  private readonly hub = new BackendEventHub();
  private readonly options: ResolvedAmqpOptions;
  /** Publishes, requests, delays, dead letters, topology. */
  private readonly connection: AmqpConnectionManager;
  /** The subscriptions' (see `sharedConnection`): its status is theirs, its errors the backend's. */
  private readonly consumerConnection: AmqpConnectionManager;
  private readonly publisher: AmqpPublisher;
  private readonly requester: AmqpRequester;
  /** Lists, replays and purges dead letters (`amqp-dead-letters.ts`). */
  readonly deadLetters: DeadLetterAdmin;
  /** Settlements (retry copies, dead letters) publish: close waits for them `publishTimeoutMs`. */
  private readonly consumers: ConsumerSet<AmqpConsumer>;
  private readonly delays: AmqpDelays;
  private readonly probe = new AmqplibInstrumentationProbe();
  private closing = false;
  private closed?: Promise<void>;
  /** Listeners of `error` events: with none, failed connection attempts are logged instead. */
  private readonly errorListeners = new Set<BackendEvents['error']>();

  constructor(options: AmqpBackendOptions) {
    this.options = resolveAmqpOptions(options);
    this.consumers = new ConsumerSet({ drainMs: this.options.publishTimeoutMs });
    const [amqplib] = loadBrokerClient('AmqpBackend', ['amqplib']) as [AmqplibModule];
    this.connection = new AmqpConnectionManager(amqplib, this.options, this.hub, this.logger, {
      setup: (conn) => this.setupConnection(conn),
      lost: () => this.connectionLost(),
      errorsHeard: () => this.errorListeners.size > 0,
    });
    this.consumerConnection = this.options.sharedConnection
      ? this.connection
      : this.ownConsumerConnection(amqplib);
    this.requester = new AmqpRequester(this.connection, this.options, this.hub);
    this.publisher = new AmqpPublisher(
      this.connection,
      this.options,
      this.hub,
      this.logger,
      this.requester,
    );
    this.delays = new AmqpDelays(this.connection, this.options, this.hub, this.logger);
    const deadLetters = new AmqpDeadLetters({
      connection: this.connection,
      options: this.options,
      hub: this.hub,
      publish: (command) => this.publisher.publish(command),
    });
    this.deadLetters = guardDeadLetters(deadLetters, {
      assertOpen: () => this.assertOpen(),
      hub: this.hub,
    });
  }

  /**
   * True while OpenTelemetry's amqplib instrumentation wraps amqplib's publish and consume
   * (`amqp-instrumentation.ts`); see {@link BrokerBackend.clientInstrumented}.
   */
  get clientInstrumented(): boolean {
    return this.probe.instrumented;
  }

  /** Current connection state. */
  get status(): BackendStatus {
    return this.hub.status;
  }

  /** True while RabbitMQ blocks publishing (a memory or disk alarm): publishes wait for it. */
  get blocked(): boolean {
    return this.connection.blocked !== undefined;
  }

  /** Connects (a second call waits for the first); rejects after `connectTimeoutMs`. */
  async connect(): Promise<void> {
    this.assertOpen();
    await this.connection.connect();
  }

  /**
   * Cancels every consumer, lets in-flight deliveries settle (at most `publishTimeoutMs`), fails
   * pending requests and publishes with `BackendClosedError`, then closes channels and the connection.
   */
  close(): Promise<void> {
    this.closed ??= this.doClose();
    return this.closed;
  }

  /** Publishes with a publisher confirm; see {@link BrokerBackend.publish}. */
  async publish(message: OutgoingMessage, options: BackendPublishOptions): Promise<void> {
    this.assertOpen();
    if (message.delayMs !== undefined && message.delayMs > 0) {
      await this.publishDelayed(message, options.mandatory);
    } else {
      await this.publisher.publish(this.directCommand(message, options.mandatory));
    }
  }

  /**
   * Sends a request over direct reply-to, volatile or durable (see `AmqpRequester`); see
   * {@link BrokerBackend.request}.
   */
  request(message: OutgoingMessage, options: BackendRequestOptions): Promise<IncomingReply> {
    const refused = requestRefusal('AmqpBackend', this.closing, message);
    if (refused) return Promise.reject(refused);
    return this.requester.request(
      message,
      options.timeoutMs,
      options.durable,
      (m) => this.directCommand(m, true),
      (command) => this.publisher.publish(command),
    );
  }

  /** Declares the subscription's topology and starts consuming; rejects on a topology error. */
  async subscribe(spec: SubscriptionSpec, handler: DeliveryHandler): Promise<BackendSubscription> {
    this.assertOpen();
    if (!this.connection.current) await this.connect();
    if (!this.consumerConnection.current) await this.consumerConnection.connect();
    const consumer = new AmqpConsumer(spec, handler, {
      connection: this.consumerConnection,
      options: this.options,
      hub: this.hub,
      logger: this.logger,
      publish: (command) => this.publisher.publish(command),
      send: (command) => this.publisher.send(command),
      delays: this.delays,
      isClosing: () => this.closing,
    });
    const subscription = await this.consumers.start(
      consumer,
      () => consumer.start(),
      `AmqpBackend closed while the subscription to '${spec.queue}' was starting`,
    );
    // The core logs each route once at start-up; this is the broker-level detail.
    this.logger.debug(
      spec.external
        ? `Consuming queue '${spec.queue}' as it is`
        : `Consuming ${spec.topics.map((t) => `${this.options.exchange}::${t}`).join(', ')} -> queue '${spec.queue}'`,
    );
    return subscription;
  }

  /** Whether each subscription is consuming now. */
  consumerStates(): readonly ConsumerState[] {
    return this.consumers.states();
  }

  /**
   * Listens to `status` and `error` events. While nothing listens to `error`, failed connection
   * attempts are logged as warnings, so that they are never unseen.
   */
  on<E extends keyof BackendEvents>(event: E, listener: BackendEvents[E]): () => void {
    const off = this.hub.on(event, listener);
    if (event !== 'error') return off;
    const errorListener = listener as BackendEvents['error'];
    this.errorListeners.add(errorListener);
    return () => {
      this.errorListeners.delete(errorListener);
      off();
    };
  }

  private async doClose(): Promise<void> {
    this.closing = true;
    // Settlements still running publish their copies before the publisher closes.
    const consumers = await this.consumers.close();
    await this.requester.close();
    await this.publisher.close();
    await Promise.all(consumers.map((c) => c.closeChannel()));
    await this.delays.close();
    if (this.consumerConnection !== this.connection) await this.consumerConnection.close();
    await this.connection.close();
    this.hub.setStatus('closed');
    this.logger.log('Closed the RabbitMQ connection');
  }

  /** Runs on each new connection: the main exchange and the publisher channel must exist first. */
  private async setupConnection(conn: ChannelModel): Promise<void> {
    this.delays.reset();
    if (this.options.assertTopology) {
      const ch = await conn.createChannel();
      ch.on('error', () => undefined);
      try {
        await assertMainExchange(ch, this.options);
        await assertRequestExchange(ch, this.options);
      } finally {
        await ch.close().catch(() => undefined);
      }
    }
    await this.publisher.open(conn);
    this.probe.saw(this.publisher.current);
    await this.delays.open(conn);
  }

  private connectionLost(): void {
    this.delays.lost();
    this.publisher.lost();
    if (this.consumerConnection === this.connection) this.consumersLost();
  }

  private consumersLost(): void {
    for (const consumer of this.consumers) consumer.connectionLost();
  }

  /**
   * The subscriptions' own connection: opened by the first subscribe, rebuilt like the main one; its
   * status is not the backend's (each subscription reports its own, see `consumerStates`).
   */
  private ownConsumerConnection(amqplib: AmqplibModule): AmqpConnectionManager {
    const hub = new BackendEventHub();
    hub.on('error', (error) => this.hub.emitError(error));
    // Its own log context: a lost link is logged once per connection, and says which one.
    const logger = new Logger(`${AmqpBackend.name} (consuming connection)`);
    return new AmqpConnectionManager(amqplib, this.options, hub, logger, {
      setup: async () => undefined,
      lost: () => this.consumersLost(),
      errorsHeard: () => this.errorListeners.size > 0,
    });
  }

  /**
   * Publishes a delayed message. To a named queue: through the delay levels (see
   * `amqp-delay-levels.ts`), once the queue is known to exist (the levels bind it to deliver to it);
   * a missing one is refused, or with `allowUnroutable` skipped, as no queue would receive it. To a
   * topic: at once, with its due time, for each receiving queue's consumer to park until then (see
   * `amqp-parking.ts`), so that a topic no queue is bound to is refused now, as any publish.
   */
  private async publishDelayed(message: OutgoingMessage, mandatory: boolean): Promise<void> {
    const delayMs = message.delayMs as number;
    if (message.queue === undefined) {
      const headers = { ...message.headers, [DUE_HEADER]: Date.now() + delayMs };
      await this.publisher.publish(this.directCommand({ ...message, headers }, mandatory));
      return;
    }
    const conn = await this.connection.waitForConnection(this.options.publishTimeoutMs);
    if (!(await queueExists(conn, message.queue))) {
      if (mandatory) throw new UnroutableError(`queue ${message.queue}`);
      return;
    }
    const headers = { ...message.headers, [MessagingHeaders.TOPIC]: message.queue };
    await this.delays.publish(delayMs, this.directCommand({ ...message, headers }, true));
  }

  private directCommand(message: OutgoingMessage, mandatory: boolean): PublishCommand {
    const target = this.targetOf(message);
    return {
      exchange: message.queue !== undefined ? '' : this.options.exchange,
      routingKey: target,
      content: message.body,
      properties: publishProperties(message, mandatory),
      target,
    };
  }

  private targetOf(message: OutgoingMessage): string {
    const target = messageTarget('AmqpBackend', message);
    if (target instanceof Error) throw target;
    return target;
  }

  private assertOpen(): void {
    if (this.closing) throw closedError('AmqpBackend');
  }
}
