import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Optional } from '@nestjs/common';
import type {
  BackendPublishOptions,
  BrokerBackend,
  IncomingReply,
  MessageHeaders,
  OutgoingMessage,
} from '../backend/broker-backend.interface';
import { MessagingHeaders, withoutReservedHeaders } from '../backend/message-headers';
import { MessageCodec } from '../codec/message-codec';
import {
  cloudEventHeaders,
  cloudEventsPrefix,
  type CloudEventsSettings,
  resolveCloudEvents,
  type SentEvent,
  structuredEnvelope,
} from '../codec/cloud-events';
import { checkBoolean, checkInteger, checkName, checkOptionsObject } from '../errors/config-checks';
import { remoteHandlerError } from '../backend/remote-error';
import { MESSAGING_BACKEND, MESSAGING_OPTIONS } from '../messaging.constants';
import type { ResolvedMessagingOptions } from '../options/messaging-options';
import { MAX_DELAY_MS } from '../retry/retry-options';
import type { ProducerTarget } from '../decorators/producer.decorator';
import { withVersion } from '../decorators/message-versions';
import { currentStoreTransaction } from '../store/transactions';
import { outboxMessageOf, type StoreTransaction } from '../store/message-store';
import { MessagingInstruments } from '../observability/messaging-metrics';
import {
  MessagingTracer,
  NO_TRACE_HEADERS,
  type PublishTrace,
} from '../observability/messaging-tracer';

/** Options of one publish. */
export interface PublishOptions {
  /** Extra headers (string, number or boolean values). */
  headers?: MessageHeaders;
  /** The idempotency key consumers see as `ctx.messageId`. @default a random UUID */
  messageId?: string;
  correlationId?: string;
  /** Deliver no earlier than this many milliseconds from now (held by the broker). */
  delayMs?: number;
  /** Resolve even when no queue receives the message. @default the producer's or module's setting */
  allowUnroutable?: boolean;
  /**
   * The message's key for ordered handlers (`@Consume(topic, { ordered: true })`): they handle the
   * messages of one key one at a time, in the order they were published. Inside a transaction (the
   * outbox), messages of one key are also published in the order they were written. Up to 1000
   * characters.
   * @default none (for the outbox: the topic, or queue)
   */
  orderingKey?: string;
  /**
   * The message's version (`x-messaging-version`, an integer from 1), over the producer's
   * (`@Producer({ version })`). @default the producer's; none: no header (version 1)
   */
  version?: number;
}

/** Options of one request. */
export interface RequestOptions {
  /** @default the module's `requestTimeoutMs` (5000) */
  timeoutMs?: number;
  headers?: MessageHeaders;
  messageId?: string;
  /**
   * Send the request like an event: persistent and confirmed, into the handler's durable queue, where
   * it waits for an instance that starts within `timeoutMs`. Without it a request is volatile, as
   * hand-written RPC is (a reply is worthless once its caller timed out): it goes only to instances
   * consuming now, and rejects with `UnroutableError` at once when there is none.
   * @default the module's `durableRequests` (false)
   */
  durable?: boolean;
  /** The request's version (`x-messaging-version`), as {@link PublishOptions.version}. */
  version?: number;
}

// Shared, frozen: the common call (no options, no headers) allocates none of them.
const NO_OPTIONS: PublishOptions & RequestOptions = Object.freeze({});
const NO_HEADERS: MessageHeaders = Object.freeze({});
const MANDATORY: BackendPublishOptions = Object.freeze({ mandatory: true });
const NOT_MANDATORY: BackendPublishOptions = Object.freeze({ mandatory: false });

const PUBLISH_KEYS: readonly (keyof PublishOptions)[] = [
  'headers',
  'messageId',
  'correlationId',
  'delayMs',
  'allowUnroutable',
  'orderingKey',
  'version',
];
const REQUEST_KEYS: readonly (keyof RequestOptions)[] = [
  'timeoutMs',
  'headers',
  'messageId',
  'durable',
  'version',
];

/**
 * Encodes payloads and hands them to the backend: the one publishing path shared by
 * `MessageProducer` and `MessagingClient`.
 */
@Injectable()
export class MessagingPublisher {
  constructor(
    @Inject(MESSAGING_OPTIONS) private readonly options: ResolvedMessagingOptions,
    @Inject(MESSAGING_BACKEND) private readonly backend: BrokerBackend,
    private readonly codec: MessageCodec,
    @Optional() instruments?: MessagingInstruments,
    @Optional() tracer?: MessagingTracer,
  ) {
    this.instruments = instruments ?? new MessagingInstruments(undefined);
    this.tracer = tracer ?? new MessagingTracer(backend.name);
    this.cloudEventsPrefix = cloudEventsPrefix(backend.name);
  }

  private readonly instruments: MessagingInstruments;
  private readonly tracer: MessagingTracer;
  /** The binary-mode header prefix of CloudEvents on this backend. */
  private readonly cloudEventsPrefix: string;
  /** The CloudEvents settings of producers that give their own, merged over the module's once. */
  private readonly producerCloudEvents = new WeakMap<ProducerTarget, CloudEventsSettings | false>();

  /**
   * Publishes `payload`; resolves with its message id once the broker accepted it. Inside a store
   * transaction (`MessagingTransactions`, an idempotent handler) it resolves once the message is in
   * the outbox, which the relay publishes after the commit. (Not an async function: while the
   * broker confirms, only the id is held, not the payload or the message.)
   */
  publish(
    target: ProducerTarget,
    payload: unknown,
    options: PublishOptions = NO_OPTIONS,
  ): Promise<string> {
    try {
      if (options !== NO_OPTIONS) checkOptionsObject(options, PUBLISH_KEYS, 'publish() options');
      const [message, trace] = this.buildMessage(target, payload, options);
      const allowed = options.allowUnroutable ?? target.allowUnroutable;
      const mandatory = !(allowed ?? this.options.allowUnroutable);
      const { messageId } = message;
      const destination = (message.topic ?? message.queue) as string;
      this.instruments.published(destination);
      const tx = currentStoreTransaction(this.backend);
      const sent = tx
        ? this.enqueue(tx, message, mandatory, options.orderingKey)
        : trace.send(this.backend, message, mandatory ? MANDATORY : NOT_MANDATORY);
      return sent.then(
        () => {
          trace.end();
          if (!tx) this.instruments.confirmed(destination);
          return messageId;
        },
        (error: unknown) => {
          trace.end(error);
          this.instruments.rejected(destination, error);
          throw error;
        },
      );
    } catch (error) {
      // Bad options, an unencodable or oversized payload: a rejection, as from an async function.
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /**
   * Sends a request and resolves with the decoded reply, or rejects with the handler's error. The
   * request carries its deadline (`x-messaging-deadline`), so a handler reached after its caller gave
   * up skips it. (Not an async function: one promise chain per call.)
   */
  request<R>(
    target: ProducerTarget,
    payload: unknown,
    options: RequestOptions = NO_OPTIONS,
  ): Promise<R> {
    let trace: PublishTrace;
    let sent: Promise<IncomingReply>;
    try {
      if (options !== NO_OPTIONS) checkOptionsObject(options, REQUEST_KEYS, 'request() options');
      const timeoutMs = checkInteger(
        options.timeoutMs,
        this.options.requestTimeoutMs,
        'request(): timeoutMs',
        1,
      );
      const durable = checkBoolean(
        options.durable,
        this.options.durableRequests,
        'request(): durable',
      );
      let message: OutgoingMessage;
      [message, trace] = this.buildMessage(target, payload, options, Date.now() + timeoutMs);
      sent = trace.request(this.backend, message, { timeoutMs, durable });
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    // The span of a request ends with its reply, failed with the handler's error or a bad reply.
    return sent.then(
      (reply) => {
        try {
          const value = this.replyValue<R>(reply);
          trace.end();
          return value;
        } catch (error) {
          trace.end(error);
          throw error;
        }
      },
      (error: unknown) => {
        trace.end(error);
        throw error;
      },
    );
  }

  /** The decoded reply, or the handler's error as a `RemoteHandlerError`. */
  private replyValue<R>(reply: IncomingReply): R {
    const decoded = this.codec.decode(reply);
    const remoteError = reply.headers[MessagingHeaders.REPLY_ERROR];
    if (remoteError === undefined) return decoded as R;
    throw remoteHandlerError(decoded, remoteError);
  }

  /** Writes `message` to the transaction's outbox (its encoding kept: `outboxMessageOf`). */
  private async enqueue(
    tx: StoreTransaction,
    message: OutgoingMessage,
    mandatory: boolean,
    orderingKey: string | undefined,
  ): Promise<void> {
    await tx.enqueue(outboxMessageOf(message, mandatory, orderingKey));
  }

  /**
   * The message to send, and its publish span (its `traceparent` is in the headers); a request's
   * `deadline` joins its headers. The caller's own headers object is sent as it is when nothing is
   * added to it.
   */
  private buildMessage(
    target: ProducerTarget,
    payload: unknown,
    options: PublishOptions & RequestOptions,
    deadline?: number,
  ): [OutgoingMessage, PublishTrace] {
    if (options.delayMs !== undefined)
      checkInteger(options.delayMs, 0, 'publish(): delayMs', 0, MAX_DELAY_MS);
    const messageId = options.messageId ?? randomUUID();
    const correlationId = options.correlationId ?? messageId;
    const timestamp = Date.now();
    const events = this.cloudEventsOf(target);
    const sent: SentEvent | undefined = events && {
      messageId,
      topic: target.topic,
      queue: target.queue,
      timestamp,
    };
    const encoded =
      events?.mode === 'structured'
        ? this.codec.encode(payload, structuredEnvelope(events, sent as SentEvent))
        : this.codec.encode(payload);
    const own = withVersion(
      withoutReservedHeaders(options.headers ?? NO_HEADERS),
      options.version ?? target.version,
      'publish(): version',
    );
    const trace = this.tracer.publish(
      {
        topic: target.topic,
        queue: target.queue,
        messageId,
        correlationId,
        bodySize: encoded.body.length,
      },
      own,
    );
    // A binary CloudEvent's attributes after the caller's headers: a `subject` or an extension
    // given as a header with the prefix travels, the required ones are the library's.
    const event =
      events?.mode === 'binary'
        ? cloudEventHeaders(events, this.cloudEventsPrefix, sent as SentEvent)
        : undefined;
    const headers =
      deadline !== undefined
        ? { ...own, ...trace.headers, ...event, [MessagingHeaders.DEADLINE]: deadline }
        : trace.headers === NO_TRACE_HEADERS && !event
          ? own
          : { ...own, ...trace.headers, ...event };
    const message: OutgoingMessage = {
      topic: target.topic,
      queue: target.queue,
      body: encoded.body,
      contentType: encoded.contentType,
      contentEncoding: encoded.contentEncoding,
      headers:
        options.orderingKey === undefined
          ? headers
          : {
              ...headers,
              [MessagingHeaders.ORDERING_KEY]: checkName(
                options.orderingKey,
                'publish(): orderingKey',
                1000,
              ) as string,
            },
      messageId,
      correlationId,
      timestamp,
      delayMs: options.delayMs,
    };
    return [message, trace];
  }

  /** How `target` sends CloudEvents: its own `cloudEvents` over the module's, or the module's. */
  private cloudEventsOf(target: ProducerTarget): CloudEventsSettings | undefined {
    if (target.cloudEvents === undefined) return this.options.cloudEvents;
    let settings = this.producerCloudEvents.get(target);
    if (settings === undefined) {
      settings =
        resolveCloudEvents(
          target.cloudEvents,
          { service: this.options.service, inherited: this.options.cloudEvents },
          '@Producer: cloudEvents',
        ) ?? false;
      this.producerCloudEvents.set(target, settings);
    }
    return settings || undefined;
  }
}
