import type { Delivery, OutgoingReply, Settlement } from '../backend/broker-backend.interface';
import type { InMemoryBroker, MemoryConsumer } from '../backends/memory/in-memory.broker';
import type { MessageCodec } from '../codec/message-codec';
import { describeFailure } from '../errors/failure';
import { remoteErrorReply } from '../backend/remote-error';
import { classifyFailure } from '../retry/retry-policy';

/** The service (consumer group) of the kit's stubs: its dead letters hold what a stub threw on. */
export const STUB_SERVICE = 'messaging-test-kit';

/** What a stub is told about the message besides its payload. */
export interface StubbedMessage {
  /** The topic it was published to. */
  readonly topic: string;
  readonly headers: Readonly<Record<string, unknown>>;
  readonly messageId: string;
  readonly correlationId?: string;
  /** Whether it is a request (its return value is the reply). */
  readonly isRequest: boolean;
}

/**
 * Stands in for a handler of another service: gets the decoded payload; for a request, what it
 * returns (or resolves with) is the reply, and what it throws reaches the caller as a
 * `RemoteHandlerError`.
 */
export type StubHandler<T = any, R = unknown> = (
  payload: T,
  message: StubbedMessage,
) => R | Promise<R>;

interface Stub {
  handler: StubHandler;
  readonly consumer: MemoryConsumer;
}

const ACK: Settlement = Object.freeze({ action: 'ack' });

/**
 * Consumers on the kit's broker that stand in for services the test does not start: each stubbed
 * topic gets a queue of {@link STUB_SERVICE} bound to it, so publishes to it are routable and
 * requests get the stub's reply. Stubbing a topic again replaces its handler.
 */
export class TopicStubs {
  private readonly stubs = new Map<string, Stub>();

  constructor(
    private readonly broker: InMemoryBroker,
    private readonly codec: MessageCodec,
  ) {}

  /** Consumes `topic` (a pattern: `*` and `#` work) with `handler`. */
  add(topic: string, handler: StubHandler): void {
    const existing = this.stubs.get(topic);
    if (existing) {
      existing.handler = handler;
      return;
    }
    const queue = `${STUB_SERVICE}.${topic}`;
    const consumer: MemoryConsumer = {
      service: STUB_SERVICE,
      // Looked up per delivery: stubbing the topic again replaces the handler.
      handler: (delivery) => this.handle(delivery, stub.handler),
      concurrency: 100,
      inFlight: 0,
      active: true,
      unsettled: new Set(),
    };
    const stub: Stub = { handler, consumer };
    this.broker.declareQueue(queue, [topic]);
    this.broker.addConsumer(queue, consumer);
    this.stubs.set(topic, stub);
  }

  /** Removes every stub (their queues stay, unconsumed, as in a broker). */
  close(): void {
    for (const [topic, stub] of this.stubs) {
      this.broker.removeConsumer(`${STUB_SERVICE}.${topic}`, stub.consumer);
    }
    this.stubs.clear();
  }

  private async handle(delivery: Delivery, handler: StubHandler): Promise<Settlement> {
    const isRequest = delivery.replyTo !== undefined;
    try {
      const result = await handler(this.codec.decode(delivery), {
        topic: delivery.topic,
        headers: delivery.headers,
        messageId: delivery.messageId,
        correlationId: delivery.correlationId,
        isRequest,
      });
      return isRequest ? { action: 'ack', reply: this.encodeReply(result) } : ACK;
    } catch (error) {
      if (!isRequest) {
        return {
          action: 'dead-letter',
          failure: describeFailure(error, classifyFailure(error), new Date()),
        };
      }
      // What MessagingServer replies when a handler throws: the caller gets a RemoteHandlerError.
      return { action: 'ack', reply: remoteErrorReply(error) };
    }
  }

  private encodeReply(result: unknown): OutgoingReply {
    const encoded = this.codec.encode(result);
    return {
      body: encoded.body,
      contentType: encoded.contentType,
      contentEncoding: encoded.contentEncoding,
      headers: {},
    };
  }
}
