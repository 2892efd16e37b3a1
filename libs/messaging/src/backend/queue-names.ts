/**
 * Name of a service's dead-letter queue, `<service>.dead-letter`: shared by the core (which keeps
 * routes from taking it) and the backends that declare it.
 */
export function deadLetterQueueName(service: string): string {
  return `${service}.dead-letter`;
}
