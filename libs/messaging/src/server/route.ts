import type { MessageHandler } from '@nestjs/microservices';
import type { SubscriptionSpec } from '../backend/broker-backend.interface';
import { deadLetterQueueName } from '../backend/queue-names';
import type { ConsumeDefinition } from '../decorators/consume.decorator';
import { MessagingConfigError } from '../errors/messaging.errors';
import { CONSUME_METADATA } from '../messaging.constants';
import type { ResolvedMessagingOptions } from '../options/messaging-options';
import { resolveRetry } from '../retry/retry-options';
import type { ResolvedRetryPolicy } from '../retry/retry-policy';
import { HandlerSlots } from './handler-slots';
import { resolveBatch, type ResolvedBatch } from './batch-route';

/** One `@Consume` handler with its options resolved against the module's. */
export interface Route {
  /** `Class.method` */
  readonly name: string;
  readonly spec: SubscriptionSpec;
  readonly retry: ResolvedRetryPolicy | false;
  readonly deadLetter: boolean;
  /** Handled at most once per message id (the inbox), in a transaction of the store. */
  readonly idempotent: boolean;
  readonly handler: MessageHandler;
  /** Its `concurrency`, across every source of its deliveries. */
  readonly slots: HandlerSlots;
  /** With `@Consume({ batch })`: `slots` counts batches, and the backend lets `size` × as many in. */
  readonly batch?: ResolvedBatch;
}

/**
 * Resolves every `@Consume` handler Nest registered on the server into a route. Each handler's own
 * options were checked where `@Consume` was written; this throws a `MessagingConfigError` for what
 * only the module's options reveal: a retry policy that does not merge, a queue name that is taken
 * or too long, two handlers that would share a queue.
 */
export function buildRoutes(
  handlers: Map<string, MessageHandler>,
  options: ResolvedMessagingOptions,
): Route[] {
  const routes: Route[] = [];
  const byQueue = new Map<string, string>();
  for (const handler of handlers.values()) {
    const definition = handler.extras?.[CONSUME_METADATA] as ConsumeDefinition | undefined;
    if (!definition) continue;
    const route = buildRoute(definition, handler, options);
    const other = byQueue.get(route.spec.queue);
    if (other !== undefined) {
      const fix = route.spec.external
        ? 'Consume a named queue with one handler only'
        : `Give one of them a route name: @Consume('${definition.topic ?? ''}', { name: '${definition.handlerName}' })`;
      throw new MessagingConfigError(
        `${other} and ${route.name} would both consume queue '${route.spec.queue}'. ${fix}`,
      );
    }
    byQueue.set(route.spec.queue, route.name);
    routes.push(route);
  }
  return routes;
}

function buildRoute(
  definition: ConsumeDefinition,
  handler: MessageHandler,
  options: ResolvedMessagingOptions,
): Route {
  const { topic, options: consume, handlerName } = definition;
  const where = `@Consume on ${handlerName}`;
  const name = consume.name ?? topic;
  const external = consume.queue !== undefined;
  const queue = external ? (consume.queue as string) : `${options.service}.${name}`;
  if (!external && queue === deadLetterQueueName(options.service)) {
    throw new MessagingConfigError(
      `${where}: queue '${queue}' is the name of the service's dead-letter queue; give the handler another { name }`,
    );
  }
  if (Buffer.byteLength(queue) > 255) {
    throw new MessagingConfigError(
      `${where}: queue name '${queue}' is over 255 bytes; give a shorter { name }`,
    );
  }
  const concurrency = consume.concurrency ?? options.concurrency;
  const batch = resolveBatch(definition, concurrency, where);
  return {
    name: handlerName,
    handler,
    slots: new HandlerSlots(concurrency),
    retry: resolveRetry(consume.retry, options.retry, `${where}: retry`),
    deadLetter: consume.deadLetter ?? options.deadLetter,
    idempotent: consume.idempotent ?? false,
    spec: {
      service: options.service,
      queue,
      topics: topic === undefined ? [] : [topic],
      external,
      concurrency: batch ? batch.size * concurrency : concurrency,
    },
    ...(batch && { batch }),
  };
}

/** The start-up log line of a route: `Class.method -> topic 'a.b' -> queue 'svc.a.b' (...)`. */
export function describeRoute(route: Route): string {
  const { spec, retry } = route;
  const source = spec.external
    ? `queue '${spec.queue}' (as is)`
    : `topic '${spec.topics.join("', '")}' -> queue '${spec.queue}'`;
  const retries = retry === false ? 'no retry' : `up to ${retry.maxAttempts} attempts`;
  const dlq = route.deadLetter
    ? `dead letters to '${deadLetterQueueName(spec.service)}'`
    : 'no dead letters';
  const once = route.idempotent ? ', idempotent' : '';
  const runs = route.batch
    ? `batches of up to ${route.batch.size} within ${route.batch.maxWaitMs} ms, concurrency ${spec.concurrency / route.batch.size}`
    : `concurrency ${spec.concurrency}`;
  return `${route.name} <- ${source} (${runs}, ${retries}, ${dlq}${once})`;
}
