import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type { MsgHdrs } from '@nats-io/transport-node';
import { BackendEventHub } from '../../backend/backend-events';
import type {
  BackendEvents,
  BackendPublishOptions,
  BackendRequestOptions,
  BackendStatus,
  BackendSubscription,
  BrokerBackend,
  ConsumerState,
  DeadLetter,
  DeadLetterPage,
  DeadLetterReplay,
  DeliveryHandler,
  IncomingReply,
  OutgoingMessage,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { MessagingHeaders } from '../../backend/message-headers';
import { assertValidTopicPattern } from '../../backend/topic-matcher';
import {
  BackendClosedError,
  MessagingConfigError,
  PublishFailedError,
  PublishTimeoutError,
  UnroutableError,
} from '../../errors/messaging.errors';
import {
  resolveNatsOptions,
  type NatsBackendOptions,
  type ResolvedNatsOptions,
} from './nats-backend.options';
import { describe, loadNatsModules, type NatsLink, NatsConnectionManager } from './nats-connection';
import { NatsConsumer } from './nats-consumer';
import { NatsDeadLetters } from './nats-dead-letters';
import { NatsDelayer } from './nats-delayer';
import { encodeHeaders, outgoingProperties } from './nats-messages';
import { NatsRequester } from './nats-requester';
import { NatsRoutes } from './nats-routes';
import { assertSubjectName, ensureStreams, natsNames, type NatsNames } from './nats-topology';

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
  private readonly requester: NatsRequester;
  private readonly deadLetters: NatsDeadLetters;
  private readonly delayer: NatsDelayer;
  private readonly consumers = new Set<NatsConsumer>();
  /** Cancelled consumers whose deliveries still settle: close waits for them. */
  private readonly retiring = new Set<NatsConsumer>();
  private closing = false;
  /** Subscribes in progress: close waits for them. */
  private readonly subscribing = new Set<Promise<BackendSubscription>>();
  /** When the connection was lost; undefined while connected. */
  private lostAt?: number;
  private closed?: Promise<void>;

  constructor(options: NatsBackendOptions = {}) {
    this.options = resolveNatsOptions(options);
    this.names = natsNames(this.options.prefix);
    const modules = loadNatsModules();
    this.connection = new NatsConnectionManager(modules, this.options, this.hub, this.logger, () =>
      this.reconnected(),
    );
    this.routes = new NatsRoutes(this.names.messages, this.options.routeCacheMs);
    this.requester = new NatsRequester(() => this.connection.inbox());
    const publish = (subject: string, body: Uint8Array, headers: MsgHdrs, msgID?: string) =>
      this.publishRaw(subject, body, headers, msgID);
    const headers = () => this.connection.headers();
    const link = () => this.link();
    this.deadLetters = new NatsDeadLetters({
      names: this.names,
      link,
      headers,
      publish,
      hasQueue: async (queue) => this.routes.hasQueue((await link()).jsm, queue),
    });
    this.hub.on('status', (status) => {
      if (status === 'connected') this.lostAt = undefined;
      else if (status === 'reconnecting' || status === 'disconnected') this.lostAt ??= Date.now();
    });
    this.delayer = new NatsDelayer({
      names: this.names,
      prefix: this.options.prefix,
      hub: this.hub,
      link,
      headers,
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
    await this.send(message, options.mandatory);
  }

  /** Sends a request and waits for its reply over core NATS; see {@link BrokerBackend.request}. */
  async request(message: OutgoingMessage, options: BackendRequestOptions): Promise<IncomingReply> {
    this.assertOpen();
    if (message.delayMs !== undefined && message.delayMs > 0) {
      throw new MessagingConfigError(
        'NatsBackend: a request cannot be delayed (delayMs); send it without a delay.',
      );
    }
    const target = this.targetOf(message);
    const link = await this.link();
    await this.assertRoutable(link, message);
    return this.requester.request(link, target, options.timeoutMs, (replyTo) =>
      this.send(message, false, replyTo),
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
    const started = this.startConsumer(spec, handler);
    this.subscribing.add(started);
    try {
      return await started;
    } finally {
      this.subscribing.delete(started);
    }
  }

  /** The body of `subscribe`: close waits for it, and it backs out when close began meanwhile. */
  private async startConsumer(
    spec: SubscriptionSpec,
    handler: DeliveryHandler,
  ): Promise<BackendSubscription> {
    await this.connect();
    const consumer = new NatsConsumer(spec, handler, {
      options: this.options,
      names: this.names,
      hub: this.hub,
      logger: this.logger,
      link: () => this.link(),
      headers: () => this.connection.headers(),
      publish: (subject, body, headers, msgID) => this.publishRaw(subject, body, headers, msgID),
    });
    await consumer.start();
    if (this.closing) {
      // Closed while the consumers were declared: close did not see this one, so it stops here.
      await consumer.cancel();
      await consumer.drain(this.options.closeTimeoutMs);
      throw new BackendClosedError('NatsBackend was closed while subscribing');
    }
    this.consumers.add(consumer);
    for (const route of consumer.routes) this.routes.addLocal(route);
    this.logger.debug(
      spec.external
        ? `Consuming queue '${spec.queue}' (${this.names.queueSubject(spec.queue)}) as it is`
        : `Consuming ${spec.topics.join(', ')} -> queue '${spec.queue}' on stream ${this.names.messages}`,
    );
    return {
      cancel: async () => {
        if (!this.consumers.delete(consumer)) return;
        this.retiring.add(consumer);
        await consumer.cancel();
        void consumer.drain(this.options.closeTimeoutMs).then(() => this.retiring.delete(consumer));
      },
    };
  }

  /** Lists the dead letters of `service`, oldest first. */
  async listDeadLetters(service: string, page?: DeadLetterPage): Promise<DeadLetter[]> {
    this.assertOpen();
    return this.deadLetters.list(service, page);
  }

  /** Sends one dead letter back to the queue it failed on, as attempt 1. */
  async replayDeadLetter(service: string, id: string): Promise<boolean> {
    this.assertOpen();
    return this.deadLetters.replay(service, id);
  }

  /** Replays every dead letter of `service`. */
  async replayAllDeadLetters(service: string): Promise<number> {
    this.assertOpen();
    return (await this.deadLetters.replayWhere(service, () => true)).replayed.length;
  }

  /** Deletes every dead letter of `service`. */
  async purgeDeadLetters(service: string): Promise<number> {
    this.assertOpen();
    return this.deadLetters.purge(service);
  }

  /** Visits every dead letter of `service` in one pass. */
  async scanDeadLetters(
    service: string,
    visit: (letter: DeadLetter) => boolean | void,
  ): Promise<void> {
    this.assertOpen();
    await this.deadLetters.scan(service, visit);
  }

  /** Replays, in one pass, the dead letters `select` picks. */
  async replayDeadLettersWhere(
    service: string,
    select: (letter: DeadLetter) => boolean,
  ): Promise<DeadLetterReplay> {
    this.assertOpen();
    return this.deadLetters.replayWhere(service, select);
  }

  /** Whether each subscription is pulling now. */
  consumerStates(): readonly ConsumerState[] {
    const lostAt = this.lostAt;
    return [...this.consumers].map((consumer) => {
      const state = consumer.state;
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
    // Subscribes in progress end first (they cancel what they started), then their connection goes.
    await Promise.allSettled([...this.subscribing]);
    const consumers = [...this.consumers, ...this.retiring];
    await Promise.all(consumers.map((c) => c.cancel()));
    // Settlements still running publish their copies and acks before the connection drains.
    await Promise.all(consumers.map((c) => c.drain(this.options.closeTimeoutMs)));
    await this.delayer.stop();
    this.requester.close();
    await this.connection.close();
    this.consumers.clear();
    this.retiring.clear();
    this.hub.setStatus('closed');
  }

  private reconnected(): void {
    this.delayer.renew();
    for (const consumer of this.consumers) consumer.reconnected();
  }

  private async link(): Promise<NatsLink> {
    if (this.closing && !this.connection.current)
      throw new BackendClosedError('NatsBackend is closed');
    if (this.connection.current) return this.connection.current;
    const link = await this.connection.connect();
    // Connected on first use (a producer that never called connect()): it releases delayed messages too.
    if (!this.closing) this.delayer.start();
    return link;
  }

  /** Publishes `message` to its topic or queue subject, or through the delayed stream. */
  private async send(
    message: OutgoingMessage,
    mandatory: boolean,
    replyTo?: string,
  ): Promise<void> {
    const target = this.targetOf(message);
    if (
      message.delayMs !== undefined &&
      (!Number.isFinite(message.delayMs) || message.delayMs < 0)
    ) {
      throw new MessagingConfigError(
        `delayMs must be a finite number >= 0, got ${message.delayMs}`,
      );
    }
    const link = await this.link();
    if (mandatory) await this.assertRoutable(link, message);
    const delayMs = message.delayMs ?? 0;
    const subject =
      message.queue !== undefined
        ? this.names.queueSubject(target)
        : this.names.topicSubject(target);
    // A delayed send to a queue is a copy that says its topic, as the other backends' are.
    const appHeaders =
      delayMs > 0 && message.queue !== undefined
        ? { ...message.headers, [MessagingHeaders.TOPIC]: target }
        : message.headers;
    const headers = encodeHeaders(() => this.connection.headers(), appHeaders, {
      ...outgoingProperties(message),
      replyTo,
      due: delayMs > 0 ? Date.now() + delayMs : undefined,
    });
    await this.publishRaw(
      delayMs > 0 ? this.names.delayedSubject(subject) : subject,
      message.body,
      headers,
    );
  }

  private async assertRoutable(link: NatsLink, message: OutgoingMessage): Promise<void> {
    const routed =
      message.queue !== undefined
        ? await this.routes.hasQueue(link.jsm, message.queue)
        : await this.routes.hasTopic(link.jsm, message.topic as string);
    if (!routed) throw new UnroutableError(message.topic ?? `queue ${message.queue}`);
  }

  /**
   * Publishes to a stream subject and waits for the PubAck, within `publishTimeoutMs` in all. A
   * publish written as the connection dropped is lost on the wire, so an unconfirmed one is sent
   * again (after the reconnection) under the same message id: the stream stores it once. A missing
   * stream (deleted under us) is created again. Every failure names what happened.
   */
  private async publishRaw(
    subject: string,
    body: Uint8Array,
    headers: MsgHdrs,
    msgID: string = randomUUID(),
  ): Promise<void> {
    const deadline = Date.now() + this.options.publishTimeoutMs;
    const perAttempt = Math.max(1_000, Math.floor(this.options.publishTimeoutMs / 4));
    let recreated = false;
    for (;;) {
      const { js, jsm } = await this.link();
      const startedAt = Date.now();
      const timeout = Math.max(100, Math.min(perAttempt, deadline - startedAt));
      try {
        await js.publish(subject, body, { headers, msgID, timeout });
        return;
      } catch (error) {
        const text = describe(error);
        if (!recreated && /no responders|stream not found|503/i.test(text)) {
          recreated = true;
          await ensureStreams(jsm, this.options).catch(() => undefined);
          continue;
        }
        const retriable = /timeout|disconnect|closed|reconnect/i.test(text);
        if (retriable && Date.now() < deadline && !this.closing) {
          // Failed at once (no connection yet): pause instead of spinning until the deadline.
          if (Date.now() - startedAt < 100) await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        if (retriable) {
          throw new PublishTimeoutError(
            `NATS did not confirm the publish to '${subject}' within ${this.options.publishTimeoutMs} ms ` +
              `(${text}); it may or may not be stored. Publish again with the same messageId.`,
            { cause: error },
          );
        }
        throw new PublishFailedError(`NATS refused the publish to '${subject}': ${text}`, {
          cause: error,
        });
      }
    }
  }

  private targetOf(message: OutgoingMessage): string {
    const target = message.queue ?? message.topic;
    if (
      typeof target !== 'string' ||
      target.length === 0 ||
      (message.queue !== undefined && message.topic !== undefined)
    ) {
      throw new MessagingConfigError(
        'NatsBackend: a message needs exactly one of `topic` and `queue`.',
      );
    }
    if (message.queue === undefined) assertSubjectName(target, 'topic');
    return target;
  }

  private assertOpen(): void {
    if (this.closing) throw new BackendClosedError('NatsBackend is closed');
  }
}
