/**
 * The error of a `connect()` that failed: the broker could not be reached in time, or refused this
 * client. Every backend throws its own subclass (`AmqpConnectError`, `RedisConnectError`,
 * `NatsConnectError`: the name says which broker), with the one code `CONNECT_FAILED`, and a message
 * that says where, why and what to check, without credentials.
 */
import { MessagingError } from '../errors/messaging.errors';

/** A broker that could not be connected to; see the file comment. */
export abstract class BrokerConnectError extends MessagingError {
  readonly code = 'CONNECT_FAILED';
}
