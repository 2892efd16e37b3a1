import { Logger } from '@nestjs/common';
import { BackendEventHub } from '../../backend/backend-events';
import { ConsumerSet } from '../../backend/consumer-set';
import { guardDeadLetters } from '../../backend/dead-letter-admin';
import { closedError, requestRefusal } from '../../backend/request-guards';
import type {
  BackendEvents,
  BackendPublishOptions,
  BackendRequestOptions,
  BackendStatus,
  BackendSubscription,
  BrokerBackend,
  ConsumerState,
  DeadLetterAdmin,
  DeliveryHandler,
  IncomingReply,
  OutgoingMessage,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { assertValidTopicPattern } from '../../backend/topic-matcher';
import { MessagingConfigError } from '../../errors/messaging.errors';
import {
  resolveNatsOptions,
  type NatsBackendOptions,
  type ResolvedNatsOptions,
} from './nats-backend.options';
import { loadNatsModules, type NatsLink, NatsConnectionManager } from './nats-connection';
import { NatsConsumer } from './nats-consumer';
import { NatsDeadLetters } from './nats-dead-letters';
import { NatsDelayer } from './nats-delayer';
import { encodeHeaders, volatileRequestProperties } from './nats-messages';
import { NatsPublisher } from './nats-publisher';
import { NatsRequester } from './nats-requester';
import { NatsRoutes } from './nats-routes';
import { natsNames, type NatsNames } from './nats-topology';
import type { WireHeaders } from './nats-wire';

/**
 * NATS JetStream backend over `@nats-io/transport-node` and `@nats-io/jetstream` (NATS server 2.9 or
 * later): topics as subjects of one interest-retention stream, a durable pull consumer per route
 * (instances of a service compete, services fan out), retries and `delayMs` publishes held durably by
 * the server until due, a dead-letter subject per service, request/reply over core NATS, and the
 * client's own reconnection. The topology is described in `nats-topology.ts`.
 *
 * The NATS packages are loaded when this class is constructed, so apps on another backend do not
 * need them.
 *
 * @example
 * MessagingModule.forRoot({ service: 'payments', backend: new NatsBackend({ servers: 'nats://127.0.0.1:4222' }) });
 */
export class NatsBackend implements BrokerBackend {
  readonly name = 'nats';
  private readonly logger = new Logger(NatsBackend.name);
  private readonly hub = new BackendEventHub();
  private readonly options: ResolvedNatsOptions;
  private readonly names: NatsNames;
  private readonly connection: NatsConnectionManager;
  private readonly routes: NatsRoutes;
  private readonly publisher: NatsPublisher;
  private readonly requester: NatsRequester;
  /** Lists, replays and purges dead letters (`nats-dead-letters.ts`). */
  readonly deadLetters: DeadLetterAdmin;
  private readonly delayer: NatsDelayer;
  private readonly consumers: ConsumerSet<NatsConsumer>;
  private closing = false;
  /** When the connection was lost; undefined while connected. */
  private lostAt?: number;
  private closed?: Promise<void>;

  constructor(options: NatsBackendOptions = {}) {
    this.options = resolveNatsOptions(options);
    this.consumers = new ConsumerSet({ drainMs: this.options.closeTimeoutMs });
    this.names = natsNames(this.options.prefix);
    const modules = loadNatsModules();
    this.connection = new NatsConnectionManager(modules, this.options, this.hub, this.logger, () =>
      this.reconnected(),
    );
    this.routes = new NatsRoutes(
      this.names.messages,
      this.options.routeCacheMs,
      // As one attempt of a publish (nats-publisher.ts): a lookup lost on the wire is asked again.
      Math.max(1_000, Math.floor(this.options.publishTimeoutMs / 4)),
    );
    const link = () => this.link();
    this.publisher = new NatsPublisher({
      options: this.options,
      names: this.names,
      routes: this.routes,
      link,
      current: () => this.connection.current,
      whenConnected: (deadline) => this.connection.whenConnected(deadline),
      inbox: () => this.connection.inbox(),
      closing: () => this.closing,
    });
    this.requester = new NatsRequester(
      () => this.connection.inbox(),
      async (topic) => this.routes.hasTopic((await link()).jsm, topic),
      async (topic) => this.routes.countTopic((await link()).jsm, topic),
    );
    const publish = (subject: string, body: Uint8Array, h: WireHeaders, msgID?: string) =>
      this.publisher.publish(subject, body, h, msgID);
    const deadLetters = new NatsDeadLetters({
      names: this.names,
      link,
      publish,
      hasQueue: async (queue) => this.routes.hasQueue((await link()).jsm, queue),
    });
    this.deadLetters = guardDeadLetters(deadLetters, {
      assertOpen: () => this.assertOpen(),
      hub: this.hub,
    });
    this.hub.on('status', (status) => {
      if (status === 'connected') this.lostAt = undefined;
      else if (status === 'reconnecting' || status === 'disconnected') this.lostAt ??= Date.now();
    });
    this.delayer = new NatsDelayer({
      confirmAcks: this.options.confirmAcks,
      names: this.names,
      prefix: this.options.prefix,
      hub: this.hub,
      logger: this.logger,
      link,
      publish,
    });
  }

  /** Current connection state. */
  get status(): BackendStatus {
    return this.hub.status;
  }

  /**
   * Connects (a second call waits for the first), creates the streams when missing and starts
   * releasing delayed messages; rejects after `connectTimeoutMs` with what to check.
   */
  async connect(): Promise<void> {
    this.assertOpen();
    await this.connection.connect();
    this.delayer.start();
  }

  /**
   * Cancels every consumer, lets in-flight deliveries settle (at most `closeTimeoutMs`), fails
   * pending requests, then drains and closes the connection.
   */
  close(): Promise<void> {
    this.closed ??= this.doClose();
    return this.closed;
  }

  /** Publishes and waits for the PubAck; see {@link BrokerBackend.publish}. */
  async publish(message: OutgoingMessage, options: BackendPublishOptions): Promise<void> {
    this.assertOpen();
    await this.publisher.send(message, options.mandatory);
  }

  /**
   * Sends a request and waits for its reply over core NATS; see {@link BrokerBackend.request}. A
   * volatile request to a topic is a core NATS request to the routes consuming it now; a durable one,
   * or one to a named queue, is stored in the stream like an event.
   */
  request(message: OutgoingMessage, options: BackendRequestOptions): Promise<IncomingReply> {
    try {
      const refused = requestRefusal('NatsBackend', this.closing, message);
      if (refused) throw refused;
      const target = this.publisher.targetOf(message);
      if (options.durable || message.queue !== undefined)
        return this.requestDurable(message, target, options.timeoutMs);
      const headers = encodeHeaders(message.headers, volatileRequestProperties(message));
      const subject = this.names.requestSubject(target);
      const send = (link: NatsLink) =>
        this.requester.request(link.nc, subject, target, message.body, headers, options.timeoutMs);
      const link = this.connection.current;
      return link ? send(link) : this.link().then(send);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private async requestDurable(
    message: OutgoingMessage,
    target: string,
    timeoutMs: number,
  ): Promise<IncomingReply> {
    await this.publisher.assertRoutable(message, Date.now() + this.options.publishTimeoutMs);
    const link = await this.link();
    return this.requester.requestDurable(link.nc, target, timeoutMs, (replyTo) =>
      this.publisher.send(message, false, replyTo),
    );
  }

  /** Declares the route's durable consumers and starts pulling; rejects on a declaration error. */
  async subscribe(spec: SubscriptionSpec, handler: DeliveryHandler): Promise<BackendSubscription> {
    this.assertOpen();
    if (spec.queue.length === 0 || spec.queue.split('.').some((w) => w.length === 0))
      throw new MessagingConfigError(
        `NatsBackend: queue name ${JSON.stringify(spec.queue)} has an empty word`,
      );
    for (const topic of spec.external ? [] : spec.topics)
      assertValidTopicPattern(topic, `queue '${spec.queue}'`);
    await this.connect();
    const consumer = new NatsConsumer(spec, handler, {
      options: this.options,
      names: this.names,
      hub: this.hub,
      logger: this.logger,
      link: () => this.link(),
      current: () => this.connection.current,
      inbox: () => this.connection.inbox(),
      closing: () => this.closing,
      publish: (subject, body, headers, msgID) =>
        this.publisher.publish(subject, body, headers, msgID),
    });
    const subscription = await this.consumers.start(
      consumer,
      () => consumer.start(),
      `NatsBackend closed while the subscription to '${spec.queue}' was starting`,
    );
    for (const route of consumer.routes) this.routes.addLocal(route);
    this.logger.debug(
      spec.external
        ? `Consuming queue '${spec.queue}' (${this.names.queueSubject(spec.queue)}) as it is`
        : `Consuming ${spec.topics.join(', ')} -> queue '${spec.queue}' on stream ${this.names.messages}`,
    );
    return subscription;
  }

  /** Whether each subscription is pulling now. */
  consumerStates(): readonly ConsumerState[] {
    const lostAt = this.lostAt;
    return this.consumers.states().map((state) => {
      // While the client reconnects no pull can deliver, whatever the pulls say.
      if (lostAt === undefined) return state;
      return {
        queue: state.queue,
        attached: false,
        detachedSince: Math.min(lostAt, state.detachedSince ?? lostAt),
      };
    });
  }

  /** Listens to `status` and `error` events. */
  on<E extends keyof BackendEvents>(event: E, listener: BackendEvents[E]): () => void {
    return this.hub.on(event, listener);
  }

  private async doClose(): Promise<void> {
    this.closing = true;
    // Subscribes in progress end first, then every consumer stops; settlements still running
    // publish their copies and acks before the connection drains.
    await this.consumers.close();
    await this.delayer.stop();
    this.requester.close();
    await this.connection.close();
    this.publisher.close();
    this.hub.setStatus('closed');
  }

  private reconnected(): void {
    this.routes.reconnected();
    this.delayer.renew();
    for (const consumer of this.consumers) consumer.reconnected();
  }

  private async link(): Promise<NatsLink> {
    if (this.closing && !this.connection.current) throw closedError('NatsBackend');
    if (this.connection.current) return this.connection.current;
    const link = await this.connection.connect();
    // Connected on first use (a producer that never called connect()): it releases delayed messages too.
    if (!this.closing) this.delayer.start();
    return link;
  }

  private assertOpen(): void {
    if (this.closing) throw closedError('NatsBackend');
  }
}
