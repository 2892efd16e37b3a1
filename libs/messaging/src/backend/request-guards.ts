/**
 * What every backend refuses before it sends anything, in the same words on every broker:
 *
 * | call              | refused when               | with                                             |
 * | ----------------- | -------------------------- | ------------------------------------------------ |
 * | any, once closed  | `close()` began            | `BackendClosedError`: `<Backend> is closed`      |
 * | `request()`       | the message has `delayMs`  | `MessagingConfigError`: send it without a delay  |
 * | `publish()`, `request()` | not one of `topic` and `queue` | `MessagingConfigError`: give exactly one |
 *
 * A request waits for its reply for `timeoutMs` from now: a delay would spend that time, or outlive
 * it, before anyone sees the request.
 */
import { BackendClosedError, MessagingConfigError } from '../errors/messaging.errors';
import type { OutgoingMessage } from './broker-backend.interface';

/** The error of a call to a closed backend (`backend`: its class name). */
export function closedError(backend: string): BackendClosedError {
  return new BackendClosedError(`${backend} is closed`);
}

/**
 * Why `request(message)` is refused before anything is sent, or undefined when it may go. Returned,
 * not thrown, so that `request()` rejects without an `async` wrapper on its path.
 *
 * @example
 * const refused = requestRefusal('AmqpBackend', this.closing, message);
 * if (refused) return Promise.reject(refused);
 */
export function requestRefusal(
  backend: string,
  closed: boolean,
  message: OutgoingMessage,
): Error | undefined {
  if (closed) return closedError(backend);
  if (message.delayMs !== undefined && message.delayMs > 0) {
    return new MessagingConfigError(
      `${backend}: a request cannot be delayed (delayMs); send it without a delay.`,
    );
  }
  return undefined;
}

/**
 * Where `message` goes: its `topic` or its `queue`, exactly one of them a non-empty string; else a
 * `MessagingConfigError` (`backend`: its class name). What is a valid name is each broker's own.
 */
export function messageTarget(backend: string, message: OutgoingMessage): string | Error {
  const { topic, queue } = message;
  const target = queue ?? topic;
  if (
    typeof target !== 'string' ||
    target.length === 0 ||
    (queue !== undefined && topic !== undefined)
  )
    return new MessagingConfigError(
      `${backend}: a message needs exactly one of \`topic\` and \`queue\`.`,
    );
  return target;
}
