import type { MessageHandler } from '@nestjs/microservices';
import type { SubscriptionSpec } from '../backend/broker-backend.interface';
import { deadLetterQueueName } from '../backend/queue-names';
import type { ConsumeDefinition } from '../decorators/consume.decorator';
import { MessagingConfigError } from '../errors/messaging.errors';
import { CONSUME_METADATA } from '../messaging.constants';
import {
  DEFAULT_CONNECTION,
  MAX_CONCURRENCY,
  type ResolvedMessagingOptions,
} from '../options/messaging-options';
import { resolveRetry } from '../retry/retry-options';
import type { ResolvedRetryPolicy } from '../retry/retry-policy';
import {
  DEFAULT_BREAKER_OPEN_MS,
  DEFAULT_BREAKER_WINDOW_MS,
  type ResolvedCircuitBreaker,
} from '../retry/circuit-breaker';
import { HandlerSlots } from './handler-slots';
import { resolveBatch, type ResolvedBatch } from './batch-route';
import { MessageVersions } from '../decorators/message-versions';

/** One `@Consume` handler with its options resolved against the module's. */
export interface Route {
  /** `Class.method` */
  readonly name: string;
  /** The connection it consumes on (`'default'` unless `@Consume(..., { connection })`). */
  readonly connection: string;
  readonly spec: SubscriptionSpec;
  readonly retry: ResolvedRetryPolicy | false;
  readonly deadLetter: boolean;
  /** Handled at most once per message id (the inbox), in a transaction of the store. */
  readonly idempotent: boolean;
  /** One message of an `orderingKey` at a time, retried in place (`OrderedDeliveries`). */
  readonly ordered: boolean;
  /** Its circuit breaker (`HandlerBreakers`), if it has one. */
  readonly breaker?: ResolvedCircuitBreaker;
  /**
   * What runs one message: Nest's handler, behind the upcasters of a handler of `version` (not for
   * a batch: the batch consumer upcasts each item itself).
   */
  readonly handler: MessageHandler;
  /** Its `@Consume({ version, upcast })`, if it has a version. */
  readonly versions?: MessageVersions;
  /** Its `concurrency`, across every source of its deliveries. */
  readonly slots: HandlerSlots;
  /** With `@Consume({ batch })`: `slots` counts batches, and the backend lets `size` × as many in. */
  readonly batch?: ResolvedBatch;
}

/**
 * Resolves every `@Consume` handler Nest registered on the server into a route, against the options
 * of its connection (`optionsOf`, which throws for a connection the app does not have). Each
 * handler's own options were checked where `@Consume` was written; this throws a
 * `MessagingConfigError` for what only the module's options reveal: a retry policy that does not
 * merge, a queue name that is taken or too long, two handlers that would share a queue.
 */
export function buildRoutes(
  handlers: Map<string, MessageHandler>,
  optionsOf: (connection: string, where: string) => ResolvedMessagingOptions,
): Route[] {
  const routes: Route[] = [];
  const byQueue = new Map<string, string>();
  for (const handler of handlers.values()) {
    const definition = handler.extras?.[CONSUME_METADATA] as ConsumeDefinition | undefined;
    if (!definition) continue;
    const connection = definition.options.connection ?? DEFAULT_CONNECTION;
    const options = optionsOf(connection, `@Consume on ${definition.handlerName}`);
    const route = buildRoute(definition, handler, options);
    // Two brokers may each have a queue of one name; one broker may not serve it to two handlers.
    const key = `${connection}\0${route.spec.queue}`;
    const other = byQueue.get(key);
    if (other !== undefined) {
      const fix = route.spec.external
        ? 'Consume a named queue with one handler only'
        : `Give one of them a route name: @Consume('${definition.topic ?? ''}', { name: '${definition.handlerName}' })`;
      throw new MessagingConfigError(
        `${other} and ${route.name} would both consume queue '${route.spec.queue}'. ${fix}`,
      );
    }
    byQueue.set(key, route.name);
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
  const ordered = consume.ordered ?? false;
  const batch = resolveBatch(definition, concurrency, where);
  const versions = MessageVersions.of(consume, where);
  return {
    name: handlerName,
    connection: options.name,
    handler: versions && !batch ? versions.wrap(handler) : handler,
    ...(versions && { versions }),
    slots: new HandlerSlots(concurrency),
    retry: resolveRetry(consume.retry, options.retry, `${where}: retry`),
    deadLetter: consume.deadLetter ?? options.deadLetter,
    idempotent: consume.idempotent ?? false,
    ordered,
    ...(consume.circuitBreaker
      ? {
          breaker: {
            failures: consume.circuitBreaker.failures,
            windowMs: consume.circuitBreaker.windowMs ?? DEFAULT_BREAKER_WINDOW_MS,
            openMs: consume.circuitBreaker.openMs ?? DEFAULT_BREAKER_OPEN_MS,
          },
        }
      : {}),
    spec: {
      service: options.service,
      queue,
      topics: topic === undefined ? [] : [topic],
      external,
      // One instance consumes an ordered route at a time: the order holds across instances.
      ...(ordered ? { exclusive: true } : {}),
      // An ordered route's deliveries wait for their key's turn without a handler slot: room for
      // more of them than handlers, so that a run of one key does not keep the other keys out. A
      // batch route takes a batch per handler slot.
      concurrency: batch
        ? batch.size * concurrency
        : ordered
          ? Math.min(concurrency * ORDERED_PREFETCH, MAX_CONCURRENCY)
          : concurrency,
    },
    ...(batch && { batch }),
  };
}

/** How many deliveries an ordered route takes per handler slot. */
const ORDERED_PREFETCH = 4;

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
  const breaker = route.breaker
    ? `, circuit breaker ${route.breaker.failures} failure(s) in ${route.breaker.windowMs} ms`
    : '';
  const version = route.versions ? `, version ${describeVersions(route.versions)}` : '';
  const once = `${route.idempotent ? ', idempotent' : ''}${route.ordered ? ', ordered by orderingKey' : ''}${breaker}`;
  const on = route.connection === DEFAULT_CONNECTION ? '' : ` on connection '${route.connection}'`;
  const runs = route.batch
    ? `batches of up to ${route.batch.size} within ${route.batch.maxWaitMs} ms, concurrency ${route.slots.limit}`
    : `concurrency ${route.slots.limit}`;
  return `${route.name} <- ${source}${on} (${runs}, ${retries}, ${dlq}${once}${version})`;
}

/** `3` or `3 (upcast from 1, 2)`. */
function describeVersions(versions: MessageVersions): string {
  const from = versions.upcastFrom;
  return from.length === 0
    ? `${versions.version}`
    : `${versions.version} (upcast from ${from.join(', ')})`;
}
