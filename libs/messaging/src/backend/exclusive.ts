/**
 * What the backends share of exclusive subscriptions (`SubscriptionSpec.exclusive`, a single active
 * consumer per queue across processes): the bound of a takeover after a crash, the timing of the
 * leases that brokers without such a consumer of their own keep (`lease-keeper.ts`), and the error of
 * a queue that exists with the other kind of consumers.
 */
import { MessagingConfigError } from '../errors/messaging.errors';

/**
 * The longest time from the crash of an exclusive subscription's active instance to a standby
 * taking over: on a lease, its lifetime plus one try of the standbys (8 s), rounded up. On RabbitMQ
 * a process that dies closes its connection and the next consumer is active at once; a host or link
 * that dies silently is noticed after two to three heartbeats (`heartbeatSeconds` 3 keeps that within).
 */
export const EXCLUSIVE_TAKEOVER_MS = 10_000;

/** How long a lease lives without renewal: what a crash costs, at most, before a standby may take it. */
export const EXCLUSIVE_LEASE_MS = 6_000;

/** How often the holder renews its lease and the standbys try to take it. */
export const EXCLUSIVE_RENEW_MS = 2_000;

/**
 * The error of a subscription whose queue exists with the other kind of consumers: an ordered route
 * (`exclusive`) on a queue its instances shared so far, or the other way round. `where` names the
 * place (`on RabbitMQ`), `fix` a broker's own way out (a command that deletes the queue).
 */
export function exclusiveMismatch(
  queue: string,
  exclusive: boolean,
  where: string,
  fix?: string,
): MessagingConfigError {
  const was = exclusive
    ? 'by competing consumers'
    : 'by a single active consumer (an ordered route)';
  return new MessagingConfigError(
    `Queue '${queue}' exists ${where} for consumption ${was}, and a queue cannot change its kind: ` +
      `give the handler a new \`name\` (a new queue)${fix ? `, or ${fix}` : ''}, or make every ` +
      `subscription of the queue ${exclusive ? 'unordered' : 'ordered'} again`,
  );
}
