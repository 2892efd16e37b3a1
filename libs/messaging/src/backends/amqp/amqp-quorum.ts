/**
 * Quorum queue arguments of the queues that dead-letter (work queues, delay levels): dead-lettering
 * at least once (the broker keeps a message until the target queue confirmed it), which RabbitMQ
 * allows only with `reject-publish` overflow.
 */
export function quorumArguments(): Record<string, unknown> {
  return {
    'x-queue-type': 'quorum',
    'x-dead-letter-strategy': 'at-least-once',
    'x-overflow': 'reject-publish',
  };
}
