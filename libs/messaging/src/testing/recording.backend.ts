import type {
  BackendPublishOptions,
  BackendRequestOptions,
  IncomingReply,
  OutgoingMessage,
} from '../backend/broker-backend.interface';
import { InMemoryBackend } from '../backends/memory/in-memory.backend';
import { UnroutableError } from '../errors/messaging.errors';
import type { InMemoryBroker } from '../backends/memory/in-memory.broker';

/** A message the app under test sent, as the broker took it (not yet decoded). */
export interface RecordedMessage {
  readonly message: OutgoingMessage;
  /** Sent with `request()` (it expects a reply) rather than `publish()`. */
  readonly request: boolean;
}

/**
 * An `InMemoryBackend` that records every message its app sends, in the order it was sent: the log
 * behind `MessagingTestKit.published`. A publish or request no queue received (unroutable) is not
 * kept, as it went nowhere; retries and replays are the broker's doing, not the app's, and are not
 * recorded either.
 */
export class RecordingBackend extends InMemoryBackend {
  private readonly log: RecordedMessage[] = [];

  constructor(broker: InMemoryBroker) {
    super({ broker });
  }

  /** What was sent so far, oldest first. */
  get recorded(): readonly RecordedMessage[] {
    return this.log;
  }

  /** Forgets what was recorded so far. */
  clearRecorded(): void {
    this.log.length = 0;
  }

  override publish(message: OutgoingMessage, options: BackendPublishOptions): Promise<void> {
    // Recorded when sent, not when confirmed, so the log keeps the order of the publish() calls.
    const entry: RecordedMessage = { message, request: false };
    this.log.push(entry);
    const sent = super.publish(message, options);
    sent.catch(() => this.forget(entry));
    return sent;
  }

  override request(
    message: OutgoingMessage,
    options: BackendRequestOptions,
  ): Promise<IncomingReply> {
    const entry: RecordedMessage = { message, request: true };
    this.log.push(entry);
    const sent = super.request(message, options);
    sent.catch((error: unknown) => {
      if (error instanceof UnroutableError) this.forget(entry);
    });
    return sent;
  }

  private forget(entry: RecordedMessage): void {
    const index = this.log.indexOf(entry);
    if (index >= 0) this.log.splice(index, 1);
  }
}
