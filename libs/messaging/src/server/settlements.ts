import type { Logger } from '@nestjs/common';
import type {
  Delivery,
  MessageHeaders,
  OutgoingReply,
  Settlement,
} from '../backend/broker-backend.interface';
import { describeDelivery } from '../backend/describe-delivery';
import type { MessageCodec } from '../codec/message-codec';
import { describeFailure } from '../errors/failure';
import { remoteErrorReply } from '../backend/remote-error';
import { classifyFailure, decideSettlement } from '../retry/retry-policy';
import type { Route } from './route';

/** Handled: acknowledge (shared, frozen: the common settlement allocates nothing). */
export const ACK: Settlement = Object.freeze({ action: 'ack' });
/** Not handled, handed back to the broker as it is: shutdown gave up on its handler. */
export const REQUEUE: Settlement = Object.freeze({ action: 'requeue' });
/** The headers of a reply with none of its own (shared: amqplib makes a prototype of each object). */
const NO_REPLY_HEADERS: MessageHeaders = Object.freeze({});

/**
 * How each outcome of a handler becomes the `Settlement` a backend carries out, with its log line:
 * a result (and its reply), a duplicate the inbox skipped, a failure (retried, dead-lettered or
 * dropped by the retry policy; a failed request answered with the error). Never throws.
 */
export class Settlements {
  constructor(
    private readonly codec: MessageCodec,
    private readonly logger: Logger,
  ) {}

  /** `result` handled: an ack, with the reply when the delivery is a request. */
  handled(delivery: Delivery, result: unknown): Settlement {
    return delivery.replyTo === undefined ? ACK : { action: 'ack', reply: this.reply(result) };
  }

  /** A message the inbox says this route handled already: acknowledged without running. */
  duplicate(route: Route, delivery: Delivery): Settlement {
    this.logger.debug(
      `${route.name} skipped ${describeDelivery(delivery)}: handled already (inbox)`,
    );
    if (delivery.replyTo === undefined) return ACK;
    const error = new Error(
      `message ${delivery.messageId} was handled already by idempotent ${route.name}; its reply is not kept`,
    );
    return { action: 'ack', reply: remoteErrorReply(error) };
  }

  /** What `error` (thrown by the handler or by decoding) does to the delivery. */
  failed(route: Route, delivery: Delivery, error: unknown): Settlement {
    try {
      return delivery.replyTo === undefined
        ? this.failedEvent(route, delivery, error)
        : this.failedRequest(route, delivery, error);
    } catch (unexpected) {
      // Deciding must never reject (the delivery would stay unsettled): keep the message for a human.
      const failure = describeFailure(unexpected, 'handler-error', new Date());
      this.logger.error(
        `${route.name} could not settle ${describeDelivery(delivery)}: ${failure.message}`,
      );
      return { action: 'dead-letter', failure };
    }
  }

  private failedEvent(route: Route, delivery: Delivery, error: unknown): Settlement {
    const settlement = decideSettlement({
      attempt: delivery.attempt,
      error,
      retry: route.retry,
      deadLetter: route.deadLetter,
      now: new Date(),
      random: Math.random(),
    });
    this.log(route, delivery, settlement, error);
    return settlement;
  }

  /**
   * A request is never retried: its caller is waiting and gets the error instead. Like an event, it
   * goes to the dead-letter queue when retrying could not help (unrecoverable, invalid, malformed).
   */
  private failedRequest(route: Route, delivery: Delivery, error: unknown): Settlement {
    const now = new Date();
    const reason = classifyFailure(error);
    const failure = describeFailure(error, reason, now);
    const request = `${route.name} failed request ${describeDelivery(delivery)}`;
    const reply = remoteErrorReply(error, (why) =>
      this.logger.warn(`${request}: the details of its error are not sent, ${why}`),
    );
    this.logger.warn(`${request}: ${failure.message}`);
    return reason !== 'handler-error' && route.deadLetter
      ? { action: 'dead-letter', failure, reply }
      : { action: 'ack', reply };
  }

  private log(route: Route, delivery: Delivery, settlement: Settlement, error: unknown): void {
    const id = `${route.name} ${describeDelivery(delivery)}`;
    if (settlement.action === 'retry') {
      this.logger.warn(
        `${id} failed: ${settlement.failure.message}; retrying in ${settlement.delayMs} ms`,
      );
    } else if (settlement.action === 'dead-letter') {
      this.logger.error(
        `${id} dead-lettered (${settlement.failure.reason}): ${settlement.failure.message}`,
      );
    } else {
      this.logger.error(
        `${id} failed and was dropped (deadLetter is off): ${describeFailure(error, 'handler-error', new Date()).message}`,
      );
    }
  }

  private reply(result: unknown): OutgoingReply {
    try {
      const encoded = this.codec.encode(result);
      return {
        body: encoded.body,
        contentType: encoded.contentType,
        contentEncoding: encoded.contentEncoding,
        headers: NO_REPLY_HEADERS,
      };
    } catch (error) {
      return remoteErrorReply(error);
    }
  }
}
