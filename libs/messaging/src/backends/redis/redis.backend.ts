import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { redactCredentials } from '../../backend/redact-credentials';
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
  OutgoingReply,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { BackendClosedError } from '../../errors/messaging.errors';
import {
  resolveRedisOptions,
  type RedisStreamsBackendOptions,
  type ResolvedRedisOptions,
} from './redis-backend.options';
import {
  coalesceWrites,
  connectWithin,
  createConnection,
  createNodeConnection,
  databaseOf,
  type IoRedisModule,
  loadIoRedis,
} from './redis-connection';
import { masterOf } from './redis-cluster';
import { RedisConsumer } from './redis-consumer';
import { RedisDeadLetters } from './redis-dead-letters';
import { RedisDurabilityWatch } from './redis-persistence';
import { RedisPublisher } from './redis-publisher';
import { RedisPubSub } from './redis-pubsub';
import { ReplicaWait } from './redis-replicas';
import { encodeReply } from './redis-request-entries';
import { RedisRequester } from './redis-requester';
import { RedisRoutes } from './redis-routes';
import { MOVE_DUE_SCRIPT, runScript } from './redis-scripts';
import { RedisKeys } from './redis-topology';

/** Delayed messages moved per run of the mover script. */
const MOVE_BATCH = 200;

/**
 * Redis Streams backend over `ioredis`: a stream per topic with a consumer group per queue, wildcard
 * routing kept in Redis (a script when a publisher does not know the target, one `XADD` when it
 * does), acknowledgements batched per turn of the event loop, retries and delays held in Redis (a
 * sorted set every instance polls), retries and replays to the failing queue only, a dead-letter
 * stream per service, `XAUTOCLAIM` of what a crashed consumer left pending, volatile requests over
 * pub/sub to the instances consuming their route now (no stream entry; a list their instances share
 * when there are several; refused at once when there is none), and pub/sub replies. The keys are
 * described in `redis-topology.ts`. It warns at connect when Redis persists nothing, and reports a
 * Redis that came back without its data (`redis-persistence.ts`); TLS options in `redis-tls.ts`.
 *
 * `ioredis` is loaded when this class is constructed, so apps on another backend do not need it.
 *
 * @example
 * MessagingModule.forRoot({ service: 'payments', backend: new RedisStreamsBackend({ url: 'redis://127.0.0.1:6379' }) });
 */
export class RedisStreamsBackend implements BrokerBackend {
  readonly name = 'redis';
  private readonly logger = new Logger(RedisStreamsBackend.name);
  private readonly hub = new BackendEventHub();
  private readonly options: ResolvedRedisOptions;
  private readonly ioredis: IoRedisModule;
  private readonly keys: RedisKeys;
  /** This instance's consumer name and reply address. */
  private readonly instance = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  /** A consumer cancelled while it starts stops waiting for its reader (`cancelsStart`). */
  private readonly consumers: ConsumerSet<RedisConsumer>;
  private readonly routes = new RedisRoutes();
  private readonly publisher: RedisPublisher;
  private readonly pubsub: RedisPubSub;
  private readonly requester: RedisRequester;
  /** Lists, replays and purges dead letters (`redis-dead-letters.ts`). */
  readonly deadLetters: DeadLetterAdmin;
  private readonly durability: RedisDurabilityWatch;
  /** `waitForReplicas`: undefined when off (then a publish does nothing more). */
  private readonly replicas?: ReplicaWait;
  private command?: Redis;
  private connecting?: Promise<void>;
  private poller?: NodeJS.Timeout;
  private polling = false;
  private closing = false;
  private closed?: Promise<void>;
  private lostSince?: number;

  constructor(options: RedisStreamsBackendOptions = {}) {
    this.options = resolveRedisOptions(options);
    this.consumers = new ConsumerSet({ drainMs: this.options.closeTimeoutMs, cancelsStart: true });
    this.ioredis = loadIoRedis();
    const clustered = this.options.cluster !== undefined;
    this.keys = new RedisKeys(this.options.prefix, databaseOf(this.options.url), clustered);
    this.publisher = new RedisPublisher(this.keys, this.options, this.routes);
    if (this.options.waitForReplicas)
      this.replicas = new ReplicaWait(this.options.waitForReplicas, this.keys.slot);
    this.pubsub = new RedisPubSub(
      () => createConnection(this.ioredis, this.options, 'pubsub', true),
      (redis) => connectWithin(redis, this.options, this.options.connectTimeoutMs),
      this.options.commandTimeoutMs,
      clustered
        ? {
            locate: () => (this.command ? masterOf(this.command, this.keys.slot) : undefined),
            create: (at) => createNodeConnection(this.ioredis, this.options, 'pubsub-shard', at),
          }
        : undefined,
    );
    this.requester = new RedisRequester({
      keys: this.keys,
      pubsub: this.pubsub,
      routes: this.routes,
      replyPrefix: this.keys.replyPrefix(this.instance),
      commandTimeoutMs: this.options.commandTimeoutMs,
      command: () => this.connection(),
      sendDurable: (message, replyTo) =>
        this.publisher.send(this.connection(), message, true, replyTo),
    });
    this.deadLetters = guardDeadLetters(
      new RedisDeadLetters(() => this.connection(), this.keys, this.options),
      { assertOpen: () => this.assertOpen(), hub: this.hub },
    );
    this.durability = new RedisDurabilityWatch(this.options, this.keys, this.logger, this.hub);
  }

  /** Current connection state (of the command connection). */
  get status(): BackendStatus {
    return this.hub.status;
  }

  /** Connects (a second call waits for the first); rejects after `connectTimeoutMs`. */
  connect(): Promise<void> {
    if (this.closing) return Promise.reject(closedError('RedisStreamsBackend'));
    this.connecting ??= this.doConnect().catch((error: unknown) => {
      this.connecting = undefined;
      throw error;
    });
    return this.connecting;
  }

  /**
   * Cancels every subscription, lets in-flight deliveries settle (at most `closeTimeoutMs`), fails
   * pending requests with `BackendClosedError`, then closes the connections.
   */
  close(): Promise<void> {
    this.closed ??= this.doClose();
    return this.closed;
  }

  /** Adds the message to its topic's (or queue's) stream, or to the delayed set; see {@link BrokerBackend.publish}. */
  publish(message: OutgoingMessage, options: BackendPublishOptions): Promise<void> {
    if (this.closing) return Promise.reject(closedError('RedisStreamsBackend'));
    const command = this.command;
    if (command === undefined)
      return this.connected().then((c) => this.sendNow(c, message, options.mandatory));
    if (this.replicas === undefined)
      return this.publisher.send(command, message, options.mandatory);
    return this.replicas.after(command, this.publisher.send(command, message, options.mandatory));
  }

  private sendNow(command: Redis, message: OutgoingMessage, mandatory: boolean): Promise<void> {
    const sent = this.publisher.send(command, message, mandatory);
    return this.replicas === undefined ? sent : this.replicas.after(command, sent);
  }

  /**
   * Sends a request whose reply comes over pub/sub: volatile (no stream entry, only to instances
   * consuming now) unless `durable` or sent to a named queue; see {@link BrokerBackend.request}.
   */
  request(message: OutgoingMessage, options: BackendRequestOptions): Promise<IncomingReply> {
    const refused = requestRefusal('RedisStreamsBackend', this.closing, message);
    if (refused) return Promise.reject(refused);
    if (this.command) return this.requester.request(message, options);
    return this.connected().then(() => this.requester.request(message, options));
  }

  /** Declares the subscription's binding and groups and starts reading; see {@link BrokerBackend.subscribe}. */
  async subscribe(spec: SubscriptionSpec, handler: DeliveryHandler): Promise<BackendSubscription> {
    this.assertOpen();
    const command = await this.connected();
    this.assertOpen(); // close() may have begun while connecting
    const consumer = new RedisConsumer(spec, handler, {
      options: this.options,
      keys: this.keys,
      hub: this.hub,
      logger: this.logger,
      command,
      consumer: this.instance,
      pubsub: this.pubsub,
      checkDataset: () => this.durability.recheck(command),
      closing: () => this.closing,
      createReader: () =>
        createConnection(this.ioredis, this.options, `reader:${spec.queue}`, true),
      sendReply: (replyTo, reply) => this.sendReply(replyTo, reply),
    });
    const subscription = await this.consumers.start(
      consumer,
      () =>
        consumer.start((redis) =>
          connectWithin(redis, this.options, this.options.connectTimeoutMs),
        ),
      `RedisStreamsBackend closed while the subscription to '${spec.queue}' was starting`,
    );
    this.logger.debug(
      spec.external
        ? `Consuming stream '${this.keys.queue(spec.queue)}' as it is`
        : `Consuming ${spec.topics.join(', ')} -> group '${spec.queue}'`,
    );
    return subscription;
  }

  /** Whether each subscription is reading now. */
  consumerStates(): readonly ConsumerState[] {
    return this.consumers.states();
  }

  /** Listens to `status` and `error` events. */
  on<E extends keyof BackendEvents>(event: E, listener: BackendEvents[E]): () => void {
    return this.hub.on(event, listener);
  }

  private async doConnect(): Promise<void> {
    this.hub.setStatus('connecting');
    const command = createConnection(this.ioredis, this.options, 'command', false);
    command.on('error', (error: Error) => {
      if (this.lostSince !== undefined || this.status !== 'connected') return;
      this.hub.emitError(new Error(`Redis connection error: ${error.message}`, { cause: error }));
    });
    command.on('ready', () => {
      if (this.closing) return;
      if (this.lostSince !== undefined) {
        this.logger.log('Reconnected to Redis');
        void this.durability.recheck(command);
      }
      this.lostSince = undefined;
      this.hub.setStatus('connected');
    });
    command.on('reconnecting', () => {
      if (this.closing) return;
      this.lostSince ??= Date.now();
      this.hub.setStatus('reconnecting');
    });
    try {
      await connectWithin(command, this.options, this.options.connectTimeoutMs);
    } catch (error) {
      this.hub.setStatus('disconnected');
      throw error;
    }
    await this.durability.connected(command);
    if (this.closing) {
      command.disconnect();
      throw new BackendClosedError('RedisStreamsBackend was closed while connecting');
    }
    this.command = command;
    this.hub.setStatus('connected');
    this.poller = setInterval(() => void this.moveDue(), this.options.delayPollMs);
    this.logger.log(
      this.options.cluster
        ? `Connected to the Redis Cluster of ${this.options.cluster.nodes.map(redactCredentials).join(', ')} (prefix '${this.options.prefix}': hash slot ${this.keys.slot})`
        : `Connected to Redis at ${redactCredentials(this.options.url)}`,
    );
  }

  private async doClose(): Promise<void> {
    this.closing = true;
    clearInterval(this.poller);
    await this.connecting?.catch(() => undefined);
    const consumers = await this.consumers.close();
    await Promise.all(consumers.map((c) => c.forget().catch(() => undefined)));
    this.requester.close(
      () => new BackendClosedError('RedisStreamsBackend closed before the reply arrived'),
    );
    await this.pubsub.close();
    const command = this.command;
    if (command !== undefined && command.status !== 'ready') {
      // Redis unreachable: a QUIT would wait in ioredis's queue (commandTimeoutMs) for nothing.
      command.disconnect();
    } else if (command !== undefined) {
      while (this.polling) await new Promise((resolve) => setTimeout(resolve, 5));
      await command.quit().catch(() => command.disconnect());
    }
    this.hub.setStatus('closed');
    if (this.command) this.logger.log('Closed the Redis connections');
  }

  /** Moves due delayed messages into their streams (every instance runs this; the script is atomic). */
  private async moveDue(): Promise<void> {
    if (this.polling || this.closing || !this.command || this.status !== 'connected') return;
    this.polling = true;
    try {
      for (;;) {
        const moved = Number(
          await runScript(
            this.command,
            MOVE_DUE_SCRIPT,
            1,
            this.keys.slotKey,
            this.keys.prefix,
            MOVE_BATCH,
            this.options.maxLength,
          ),
        );
        if (moved < MOVE_BATCH || this.closing) break;
      }
    } catch (error) {
      this.hub.emitError(
        new Error(`Moving due delayed messages failed: ${(error as Error).message}`, {
          cause: error,
        }),
      );
    } finally {
      this.polling = false;
    }
  }

  private async sendReply(replyTo: string, reply: OutgoingReply): Promise<void> {
    const command = this.connection();
    coalesceWrites(command);
    await command.publish(replyTo, encodeReply(reply));
  }

  private async connected(): Promise<Redis> {
    if (!this.command) await this.connect();
    return this.connection();
  }

  private connection(): Redis {
    if (!this.command) {
      throw new BackendClosedError('RedisStreamsBackend is not connected: call connect() first');
    }
    return this.command;
  }

  private assertOpen(): void {
    if (this.closing) throw closedError('RedisStreamsBackend');
  }
}
