/**
 * One error class per concept, each with a stable `code` that callers can switch on.
 */

/** Base class of every error the library throws. */
export abstract class MessagingError extends Error {
  /** Stable machine-readable code. */
  abstract readonly code: string;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * Throw from a handler to skip retries: the message goes straight to the dead-letter queue.
 *
 * @example
 * if (!order) throw new UnrecoverableError(`order ${id} does not exist`);
 */
export class UnrecoverableError extends MessagingError {
  readonly code = 'UNRECOVERABLE';
}

/** A publish that no queue received (no service consumes that topic yet). */
export class UnroutableError extends MessagingError {
  readonly code = 'UNROUTABLE';

  /**
   * `publish`: a message no queue received; `request`: a volatile request that no instance consumes
   * now; `durable-request`: a request no queue received.
   */
  constructor(
    readonly target: string,
    kind: 'publish' | 'request' | 'durable-request' = 'publish',
  ) {
    super(UnroutableError.explain(target, kind));
  }

  private static explain(target: string, kind: 'publish' | 'request' | 'durable-request'): string {
    switch (kind) {
      case 'publish':
        return (
          `No queue is bound to '${target}': the message was not delivered to anyone. ` +
          'Start a consumer of it first, or publish with { allowUnroutable: true } to accept this.'
        );
      case 'request':
        return (
          `No instance consumes '${target}' now: the request was not delivered to anyone. Start a ` +
          "consumer of it first, or send it with { durable: true } to let it wait in the handler's queue " +
          '(as handlers that take no volatile requests need: an older version of this library, or ' +
          'AmqpBackend with assertTopology: false).'
        );
      case 'durable-request':
        return (
          `No queue is bound to '${target}': the request was not delivered to anyone. ` +
          'Start a consumer of it first.'
        );
    }
  }
}

/** A bad option, thrown at start-up with what to change. */
export class MessagingConfigError extends MessagingError {
  readonly code = 'CONFIG';
}

/** A request got no reply in time. */
export class RequestTimeoutError extends MessagingError {
  readonly code = 'REQUEST_TIMEOUT';

  constructor(
    readonly target: string,
    readonly timeoutMs: number,
  ) {
    super(`No reply to the request on '${target}' within ${timeoutMs} ms`);
  }
}

/**
 * The broker did not confirm a publish in time. Its outcome is unknown: the broker may hold it. Publish
 * it again with the same `messageId` (consumers see at most a duplicate, which the id identifies).
 */
export class PublishTimeoutError extends MessagingError {
  readonly code = 'PUBLISH_TIMEOUT';
}

/**
 * Too many publishes are already waiting for the broker (`maxQueuedPublishes`, while disconnected or
 * back-pressured): refused at once instead of holding more in memory. Slow down and publish again.
 */
export class PublishBackpressureError extends MessagingError {
  readonly code = 'PUBLISH_BACKPRESSURE';
}

/** The broker refused a publish (negative acknowledgement) or the channel closed before it confirmed. */
export class PublishFailedError extends MessagingError {
  readonly code = 'PUBLISH_FAILED';
}

/** A body larger than the configured `maxBodyBytes`, refused before it is sent. */
export class PayloadTooLargeError extends MessagingError {
  readonly code = 'PAYLOAD_TOO_LARGE';
}

/** An incoming body that cannot be decoded: dead-lettered with this as the reason. */
export class MalformedMessageError extends MessagingError {
  readonly code = 'MALFORMED_MESSAGE';
}

/**
 * The remote handler of a request failed: `message` is its error's message, the rest what its error
 * said of itself (see `backend/remote-error.ts` for what crosses the wire; never its stack).
 */
export class RemoteHandlerError extends MessagingError {
  readonly code = 'REMOTE_HANDLER_ERROR';
  /** The handler's error's own `code` property (`'OUT_OF_STOCK'`, `23505`), if it had one. */
  readonly remoteCode?: string | number;
  /** An `HttpException`'s status (`404`), or the handler's error's own numeric `status`. */
  readonly status?: number;
  /** An `HttpException`'s response object, or the handler's error's own `details` (JSON). */
  readonly details?: unknown;

  constructor(
    message: string,
    /** The handler's error's class name (`NotFoundException`, `Error`). */
    readonly remoteErrorClass: string,
    typed: { remoteCode?: string | number; status?: number; details?: unknown } = {},
  ) {
    super(message);
    if (typed.remoteCode !== undefined) this.remoteCode = typed.remoteCode;
    if (typed.status !== undefined) this.status = typed.status;
    if (typed.details !== undefined) this.details = typed.details;
  }
}

/** The backend is closed (or closing): nothing more can be published or consumed. */
export class BackendClosedError extends MessagingError {
  readonly code = 'BACKEND_CLOSED';
}

/** One failed item of a batch: its index in the array the handler received, and why it failed. */
export interface BatchItemFailure {
  readonly index: number;
  readonly error: unknown;
}

/**
 * Throw from a batch handler (`@Consume(topic, { batch })`) to fail only some of its items: each
 * listed item is retried or dead-lettered by the retry policy on its own (its own attempt count), as
 * if its own handler had thrown `error`; every other item of the batch is acknowledged. The indexes
 * are those of the array the handler received. A list that names an index out of range (or not a
 * whole number) cannot be trusted to say what succeeded: the whole batch is then settled as failed,
 * each item with this error. An index listed twice counts once (its first error).
 *
 * @example
 * const failed = results.flatMap((r, index) => (r.ok ? [] : [{ index, error: r.error }]));
 * if (failed.length > 0) throw new BatchFailure(failed);
 */
export class BatchFailure extends MessagingError {
  readonly code = 'BATCH_FAILURE';

  constructor(readonly failures: readonly BatchItemFailure[]) {
    super(
      `${failures.length} item(s) of the batch failed: ` +
        failures
          .slice(0, 3)
          .map((f) => `#${f.index} ${f.error instanceof Error ? f.error.message : String(f.error)}`)
          .join('; ') +
        (failures.length > 3 ? '; ...' : ''),
    );
  }
}
