import { EXCEPTION_FILTERS_METADATA } from '@nestjs/common/constants';
import { EventPattern } from '@nestjs/microservices';
import { PATTERN_EXTRAS_METADATA } from '@nestjs/microservices/constants';
import { assertValidTopicPattern } from '../backend/topic-matcher';
import { checkBoolean, checkInteger, checkName, checkOptionsObject } from '../errors/config-checks';
import { MessagingConfigError } from '../errors/messaging.errors';
import { CONSUME_METADATA, MESSAGING_TRANSPORT } from '../messaging.constants';
import { checkConnectionName, MAX_CONCURRENCY } from '../options/messaging-options';
import { type BatchOptions, checkBatchOptions } from './batch-options';
import { checkRetryOptions, type RetryOptions } from '../retry/retry-options';
import { MessageErrorFilter } from './message-error.filter';
import { checkVersionOptions, type Upcasters } from './message-versions';
import {
  type CircuitBreakerOptions,
  DEFAULT_BREAKER_OPEN_MS,
  DEFAULT_BREAKER_WINDOW_MS,
} from '../retry/circuit-breaker';

const MESSAGE_ERROR_FILTER = new MessageErrorFilter();

/** Per-handler options of `@Consume`; unset ones come from `MessagingModule.forRoot()`. */
export interface ConsumeOptions {
  /** Retry policy of this handler, merged over the module's; `false` dead-letters on the first failure. */
  retry?: RetryOptions | false;
  /** Keep messages that failed for good in the dead-letter queue. @default true */
  deadLetter?: boolean;
  /** In-flight handler calls per instance (AMQP prefetch). @default the module's `concurrency` */
  concurrency?: number;
  /**
   * Consume this named queue as it is instead of a topic (a queue fed by plain producers in any
   * language, possibly declared by another client with its own arguments).
   */
  queue?: string;
  /**
   * Route name used in this handler's queue name (`<service>.<name>`), needed only when two
   * handlers of one service consume the same topic. @default the topic
   */
  name?: string;
  /**
   * Handle each message id at most once per service and route (the inbox): a duplicate is
   * acknowledged without running, even one delivered at the same time (it waits for the first). The
   * handler runs in a transaction of the module's `store`: its `publish()` calls go to the outbox and
   * its own writes through `MessagingTransactions.current()` commit with the inbox entry, so a crash
   * at any point leaves one effect. A handler that throws rolls it all back; its retry runs again.
   * @default false
   */
  idempotent?: boolean;
  /**
   * The connection to consume on: the `name` of a `MessagingModule.forRoot({ name, backend, ... })`,
   * for an app on several brokers. @default 'default' (the `forRoot()` without a name)
   */
  connection?: string;
  /**
   * Handle the messages of one `orderingKey` (`publish(..., { orderingKey })`) one at a time, in the
   * order they were published, across every instance of the service; different keys run at the same
   * time, up to `concurrency`. A failing message is retried in place and holds back the later ones of
   * its key only, until it succeeded or was dead-lettered. One instance of the service consumes the
   * route at a time (the others stand by). @default false
   */
  ordered?: boolean;
  /**
   * After `failures` failures within `windowMs` (60 s), hold this handler's messages for `openMs`
   * (30 s), unacknowledged, then try one: its success resumes the handler, its failure holds them
   * again. For a handler whose dependency is down, instead of burning every message's retries. Its
   * state is in health (`circuit`) and metrics (`circuit_open`). @default none
   */
  circuitBreaker?: CircuitBreakerOptions;
  /**
   * Consume in batches: `@Payload()` is an array of 1..`size` payloads (see {@link BatchOptions}).
   * Returning acknowledges each; a throw settles each by the retry policy on its own;
   * `throw new BatchFailure([{ index, error }])` fails only the listed ones.
   * @default none: one message per call
   */
  batch?: BatchOptions;
  /**
   * The version of the message this handler takes (an integer from 1): a message sent as another
   * version (its `x-messaging-version` header, stamped by `@Producer({ version })`; none = 1) is
   * upcast to it by `upcast`, or dead-lettered: an older one without its upcasters, or a newer one
   * (deploy the handler that takes it, then replay). `ctx.version` says what it was sent as.
   * @default none: the header is not read, every message is taken as it is
   */
  version?: number;
  /**
   * With `version`: `upcast[n]` turns the payload of version n into that of n + 1 (may be async), so
   * the handler takes older versions too: `{ version: 3, upcast: { 1: (v1) => v2, 2: (v2) => v3 } }`.
   * They run after decoding, before the handler's pipes. @default none: only `version` is taken
   */
  upcast?: Upcasters;
}

/** `@Consume({ topic | queue, ...options })`. */
export interface ConsumeDefinitionInput extends ConsumeOptions {
  topic?: string;
}

/** What `@Consume` records on a handler (in its Nest pattern extras), checked at decoration. */
export interface ConsumeDefinition {
  readonly topic?: string;
  readonly options: ConsumeOptions;
  /** `Class.method`, for logs. */
  readonly handlerName: string;
  /** The class and method, with `batch`: their pipes run on each item (server/batch-items.ts). */
  readonly method?: { readonly owner: object; readonly key: string | symbol };
}

const CONSUME_KEYS: readonly (keyof ConsumeDefinitionInput)[] = [
  'topic',
  'queue',
  'retry',
  'deadLetter',
  'concurrency',
  'name',
  'idempotent',
  'connection',
  'ordered',
  'circuitBreaker',
  'batch',
  'version',
  'upcast',
];
/** The options of `@Consume(topic, options)`: the topic is the first argument. */
const OPTION_KEYS = CONSUME_KEYS.filter((key) => key !== 'topic');

/**
 * Makes a controller method the handler of a topic (wildcards `*` and `#` allowed) or of a named
 * queue. It is a real Nest message handler of `MessagingServer`: `@Payload()`, `@Ctx()`, pipes,
 * guards, interceptors and exception filters work as with `@EventPattern`. The message is
 * acknowledged once the handler resolved; a throw retries it with backoff, then dead-letters it.
 * The return value is the reply when the message is a request.
 *
 * @example
 * @Consume('order.created', { retry: { maxAttempts: 3, backoff: { initialDelayMs: 500 } } })
 * async charge(@Payload() order: OrderCreated, @Ctx() ctx: MessageContext) { ... }
 *
 * @Consume({ queue: 'hello' })
 * greet(@Payload() text: string) { ... }
 *
 * // Takes version 2 of order.created, and version 1 (no header) upcast to it.
 * @Consume('order.created', { version: 2, upcast: { 1: (v1: OrderV1) => ({ ...v1, currency: 'EUR' }) } })
 * async onOrder(@Payload() order: OrderCreatedV2, @Ctx() ctx: MessageContext) { ... } // ctx.version: 1 or 2
 */
export function Consume(topic: string, options?: ConsumeOptions): MethodDecorator;
export function Consume(definition: ConsumeDefinitionInput): MethodDecorator;
export function Consume(
  topicOrDefinition: string | ConsumeDefinitionInput,
  maybeOptions: ConsumeOptions = {},
): MethodDecorator {
  return (target: object, key: string | symbol, descriptor: PropertyDescriptor) => {
    const handlerName = `${target.constructor.name}.${String(key)}`;
    const where = `@Consume on ${handlerName}`;
    const input: ConsumeDefinitionInput =
      typeof topicOrDefinition === 'string'
        ? { ...checkTopicOptions(maybeOptions, where), topic: topicOrDefinition }
        : { ...checkOptionsObject(topicOrDefinition, CONSUME_KEYS, where) };
    checkConsumeDefinition(input, where);
    const { topic, ...options } = input;
    if (Reflect.getMetadata(PATTERN_EXTRAS_METADATA, descriptor.value)?.[CONSUME_METADATA]) {
      throw new MessagingConfigError(
        `${where}: a method takes one @Consume; to consume several topics use one pattern ('order.*') or one method per topic`,
      );
    }
    const definition: ConsumeDefinition = { topic, options, handlerName };
    if (options.batch) Object.assign(definition, { method: { owner: target.constructor, key } });
    // The pattern only has to be unique per handler: routing is done by the broker, per queue.
    const pattern = { consume: topic ?? `queue:${options.queue}`, handler: handlerName };
    EventPattern(pattern, MESSAGING_TRANSPORT, { [CONSUME_METADATA]: definition })(
      target,
      key,
      descriptor,
    );
    // First in the list, so that it runs last: Nest tries method filters from the last declared, and
    // a method's filters are declared after this one when written above @Consume, before when below.
    const filters: unknown[] =
      Reflect.getMetadata(EXCEPTION_FILTERS_METADATA, descriptor.value) ?? [];
    Reflect.defineMetadata(
      EXCEPTION_FILTERS_METADATA,
      [MESSAGE_ERROR_FILTER, ...filters],
      descriptor.value,
    );
  };
}

function checkTopicOptions(options: ConsumeOptions, where: string): ConsumeOptions | undefined {
  if (options !== null && typeof options === 'object' && 'topic' in options) {
    throw new MessagingConfigError(
      `${where}: the topic is the first argument; drop 'topic' from the options, or pass one object: @Consume({ topic, ... })`,
    );
  }
  return checkOptionsObject(options, OPTION_KEYS, where);
}

/** Checks every option of one `@Consume` (its keys are checked already), so a mistake fails where it is written. */
function checkConsumeDefinition(input: ConsumeDefinitionInput, where: string): void {
  if ((input.topic === undefined) === (input.queue === undefined)) {
    throw new MessagingConfigError(
      `${where}: give exactly one of a topic ('order.created') or { queue: 'name' }`,
    );
  }
  if (input.topic !== undefined) assertValidTopicPattern(input.topic, where);
  checkName(input.queue, `${where}: queue`);
  checkName(input.name, `${where}: name`);
  checkBoolean(input.deadLetter, true, `${where}: deadLetter`);
  checkBoolean(input.idempotent, false, `${where}: idempotent`);
  checkInteger(input.concurrency, 1, `${where}: concurrency`, 1, MAX_CONCURRENCY);
  checkRetryOptions(input.retry, `${where}: retry`);
  checkConnectionName(input.connection, `${where}: connection`);
  checkBoolean(input.ordered, false, `${where}: ordered`);
  checkCircuitBreaker(input.circuitBreaker, `${where}: circuitBreaker`);
  checkBatchOptions(input.batch, input, where);
  checkVersionOptions(input.version, input.upcast, where);
  if (input.ordered && input.queue !== undefined) {
    throw new MessagingConfigError(
      `${where}: ordered consumes a queue of the library's own (one active consumer across instances); consume a topic instead of { queue: '${input.queue}' }, or drop ordered`,
    );
  }
}

const BREAKER_KEYS: readonly (keyof CircuitBreakerOptions)[] = ['failures', 'windowMs', 'openMs'];
const DAY_MS = 24 * 3600 * 1000;

/** `circuitBreaker: { failures, windowMs?, openMs? }`, each a positive integer. */
function checkCircuitBreaker(options: CircuitBreakerOptions | undefined, where: string): void {
  if (options === undefined) return;
  checkOptionsObject(options, BREAKER_KEYS, where);
  if (options.failures === undefined) {
    throw new MessagingConfigError(
      `${where} needs 'failures': how many failures within windowMs open it, e.g. { failures: 5 }`,
    );
  }
  checkInteger(options.failures, 1, `${where}: failures`, 1, 1_000_000);
  checkInteger(options.windowMs, DEFAULT_BREAKER_WINDOW_MS, `${where}: windowMs`, 1, DAY_MS);
  checkInteger(options.openMs, DEFAULT_BREAKER_OPEN_MS, `${where}: openMs`, 1, DAY_MS);
}
