/**
 * The delivery limit: the one place that decides when a message the broker keeps delivering, and
 * that is never settled, goes to the dead-letter queue unhandled (a message that crashes or
 * disconnects its consumer each time would otherwise loop forever). Pure: backends count, this
 * decides, they carry the result out as they would the core's own dead letter.
 *
 * | backend        | who counts and decides                                                  |
 * | -------------- | ----------------------------------------------------------------------- |
 * | Redis Streams  | the group's delivery count (`XPENDING`), checked here when a claim takes it |
 * | NATS JetStream | the consumer's delivery count (one more after a pull reset), checked here |
 * | RabbitMQ       | the broker: quorum queues' `x-delivery-limit` (not decided here)        |
 * | in-memory      | nothing: the broker dies with its consumers                             |
 *
 * It sits in `backend/` beside the contract, not in `retry/` beside `decideSettlement()`: a backend
 * may import only `backend/` and `errors/` (`.dependency-cruiser.js`), and this verdict is reached
 * inside a backend, before any handler runs, so the core never sees the delivery.
 */
import type { Settlement } from './broker-backend.interface';

/** A dead letter the backend puts in the service's dead-letter queue unhandled. */
export type DeliveryLimitVerdict = Extract<Settlement, { readonly action: 'dead-letter' }>;

/** Everything the verdict depends on; no clock hidden inside. */
export interface DeliveryCount {
  /**
   * How many times the broker delivered this message, 1 on the first delivery. A library retry is
   * a new copy and counts from 1 again: only deliveries never settled add up.
   */
  readonly deliveries: number;
  /** The backend's `deliveryLimit`: most deliveries a message may have and still reach its handler. */
  readonly limit: number;
  /** When the verdict is reached (the dead letter's failure time). */
  readonly now: Date;
}

/**
 * The dead letter of a delivery past its limit, with reason `delivery-limit` and error class
 * `DeliveryLimitExceeded`; `undefined` while the message may still be handled.
 */
export function decideDeliveryLimit(count: DeliveryCount): DeliveryLimitVerdict | undefined {
  const { deliveries, limit, now } = count;
  if (deliveries <= limit) return undefined;
  return {
    action: 'dead-letter',
    failure: {
      reason: 'delivery-limit',
      message: `delivered ${deliveries} times without being settled (deliveryLimit ${limit}): its consumer crashed, lost its connection or gave it back each time`,
      errorClass: 'DeliveryLimitExceeded',
      at: now,
    },
  };
}
