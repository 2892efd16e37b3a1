import { BackendEventHub } from '../../backend/backend-events';
import type {
  BackendEvents,
  BackendPublishOptions,
  BackendRequestOptions,
  BackendStatus,
  BackendSubscription,
  BrokerBackend,
  DeadLetter,
  DeadLetterAdmin,
  DeadLetterReplay,
  DeliveryHandler,
  IncomingReply,
  OutgoingMessage,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { guardDeadLetters, type DeadLetterStore } from '../../backend/dead-letter-admin';
import { closedError, requestRefusal } from '../../backend/request-guards';
import { checkOptionsObject } from '../../errors/config-checks';
import { BackendClosedError, UnroutableError } from '../../errors/messaging.errors';
import { PendingRequests } from '../../backend/pending-requests';
import { InMemoryBroker, type MemoryConsumer } from './in-memory.broker';

/** Options of `InMemoryBackend`. */
export interface InMemoryBackendOptions {
  /**
   * The broker to connect to. Backends sharing a broker exchange messages, like processes sharing a
   * RabbitMQ. @default the process-wide `InMemoryBroker.default`
   */
  broker?: InMemoryBroker;
}

/**
 * The embedded default backend: an in-process broker with the same semantics as the others (topic
 * wildcards, a copy per service, competing instances, delayed retries, dead letters, request/reply)
 * and no infrastructure. Messages live in memory: they do not survive the process, so use it for
 * development, tests and demos, and `AmqpBackend` in production.
 *
 * @example
 * MessagingModule.forRoot({ service: 'payments', backend: new InMemoryBackend() })
 */
export class InMemoryBackend implements BrokerBackend {
  readonly name = 'memory';
  private readonly broker: InMemoryBroker;
  private readonly events = new BackendEventHub();
  private readonly consumers = new Map<MemoryConsumer, string>();
  private readonly pendingRequests = new PendingRequests();
  /** Where replies to this backend's requests go: opened with its first request. */
  private mailbox?: [address: string, close: () => void];
  private requests = 0;
  /** Lists, replays and purges the dead letters its broker holds. */
  readonly deadLetters: DeadLetterAdmin;

  constructor(options: InMemoryBackendOptions = {}) {
    checkOptionsObject(options, ['broker'], 'new InMemoryBackend()');
    this.broker = options.broker ?? InMemoryBroker.default;
    this.deadLetters = guardDeadLetters(memoryDeadLetters(this.broker), {
      assertOpen: () => this.assertOpen(),
      hub: this.events,
    });
  }

  get status(): BackendStatus {
    return this.events.status;
  }

  async connect(): Promise<void> {
    if (this.status === 'closed')
      throw new BackendClosedError('This InMemoryBackend was closed; create a new one');
    this.events.setStatus('connected');
  }

  async close(): Promise<void> {
    if (this.status === 'closed') return;
    this.events.setStatus('closed');
    for (const [consumer, queue] of this.consumers) {
      this.broker.removeConsumer(queue, consumer);
      // Like a closed AMQP channel: what was delivered and not settled goes back to the queue.
      this.broker.requeueUnsettled(queue, consumer);
    }
    this.consumers.clear();
    this.mailbox?.[1]();
    this.pendingRequests.failAll(
      () => new BackendClosedError('The backend closed before the reply arrived'),
    );
  }

  publish(message: OutgoingMessage, options: BackendPublishOptions): Promise<void> {
    if (this.status === 'closed') return Promise.reject(closedError('InMemoryBackend'));
    if (message.delayMs !== undefined && message.delayMs > 0) {
      if (options.mandatory && this.broker.countRoutes(message) === 0)
        return Promise.reject(unroutable(message));
      this.broker.routeLater(message, message.delayMs);
      return PUBLISHED;
    }
    if (this.broker.route(message) === 0 && options.mandatory)
      return Promise.reject(unroutable(message));
    return this.broker.backpressure(message) ?? PUBLISHED;
  }

  request(message: OutgoingMessage, options: BackendRequestOptions): Promise<IncomingReply> {
    const refused = requestRefusal('InMemoryBackend', this.status === 'closed', message);
    if (refused) return Promise.reject(refused);
    this.mailbox ??= this.broker.openMailbox((replyTo, reply) =>
      this.pendingRequests.settle(replyTo, reply),
    );
    const replyTo = `${this.mailbox[0]}.${++this.requests}`;
    const target = message.topic ?? message.queue ?? '';
    const request = this.pendingRequests.add(replyTo, target, options.timeoutMs);
    const reached = options.durable
      ? this.broker.route(message, replyTo)
      : this.broker.routeRequest(message, replyTo);
    if (reached === 0)
      this.pendingRequests.fail(
        request,
        unroutable(
          message,
          options.durable || message.queue !== undefined ? 'durable-request' : 'request',
        ),
      );
    return request.promise;
  }

  async subscribe(spec: SubscriptionSpec, handler: DeliveryHandler): Promise<BackendSubscription> {
    this.assertOpen();
    this.broker.declareQueue(spec.queue, spec.topics, spec.exclusive === true);
    const consumer: MemoryConsumer = {
      service: spec.service,
      handler,
      concurrency: spec.concurrency,
      inFlight: 0,
      active: true,
      unsettled: new Set(),
    };
    this.consumers.set(consumer, spec.queue);
    this.broker.addConsumer(spec.queue, consumer);
    return {
      cancel: async () => {
        this.broker.removeConsumer(spec.queue, consumer);
      },
    };
  }

  on<E extends keyof BackendEvents>(event: E, listener: BackendEvents[E]): () => void {
    return this.events.on(event, listener);
  }

  private assertOpen(): void {
    if (this.status === 'closed') throw closedError('InMemoryBackend');
  }
}

/** The dead letters `broker` holds, each operation done at once and in one pass. */
function memoryDeadLetters(broker: InMemoryBroker): DeadLetterStore {
  return {
    list: async (service, page = {}) => {
      const from = page.offset ?? 0;
      return broker.listDeadLetters(service, from, from + (page.limit ?? Infinity));
    },
    scan: async (service, visit) => {
      for (const letter of broker.listDeadLetters(service)) if (visit(letter) === false) return;
    },
    replay: async (service, id) =>
      broker.replayDeadLetters(service, (letter) => letter.id === id) > 0,
    replayWhere: async (service, select) => replayPicked(broker, service, select),
    purge: async (service) => broker.purgeDeadLetters(service),
    purgeWhere: async (service, select) => ({
      purged: broker.purgeDeadLettersWhere(service, select),
    }),
  };
}

/** Replays what `select` picks; a picked letter whose queue is gone stays, and is reported. */
function replayPicked(
  broker: InMemoryBroker,
  service: string,
  select: (letter: DeadLetter) => boolean,
): DeadLetterReplay {
  const picked = broker.listDeadLetters(service).filter(select);
  const ids = new Set(picked.map((letter) => letter.id));
  const replayed = new Set<string>();
  broker.replayDeadLetters(service, (letter) => {
    if (!ids.has(letter.id)) return false;
    replayed.add(letter.id);
    return true;
  });
  return {
    replayed: [...replayed],
    failed: picked
      .filter((letter) => !replayed.has(letter.id))
      .map((letter) => ({ id: letter.id, error: `its queue '${letter.queue}' is gone` })),
  };
}

/** What a publish the broker took at once resolves with (shared: it allocates nothing). */
const PUBLISHED: Promise<void> = Promise.resolve();

function unroutable(
  message: OutgoingMessage,
  kind: 'publish' | 'request' | 'durable-request' = 'publish',
): UnroutableError {
  return new UnroutableError(message.topic ?? `queue ${message.queue}`, kind);
}
