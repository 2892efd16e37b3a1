import type { Delivery, MessageHeaders } from '../backend/broker-backend.interface';
import {
  type CurrentMessage,
  type RequestContextMode,
  runWithMessage,
  scopedMessage,
  enterScope,
} from './message-scope';
import {
  formatTraceparent,
  newSpanId,
  traceIdOf,
  parseTraceparent,
  type TraceContext,
  TRACEPARENT,
  TRACESTATE,
} from './trace-context';

/** The parts of `@opentelemetry/api` used here (its types need not be installed). */
interface SpanContext {
  traceId: string;
  spanId: string;
  traceFlags: number;
  isRemote?: boolean;
  traceState?: { serialize(): string };
}
interface Span {
  spanContext(): SpanContext;
  isRecording(): boolean;
  setAttribute(key: string, value: string | number | boolean): unknown;
  setStatus(status: { code: number; message?: string }): unknown;
  recordException(exception: unknown): unknown;
  end(): void;
}
type Context = object;
interface Tracer {
  startSpan(name: string, options: Record<string, unknown>, context?: Context): Span;
}
interface TracerProvider {
  getDelegate?(): unknown;
}
interface OpenTelemetryApi {
  trace: {
    getTracer(name: string, version?: string): Tracer;
    getTracerProvider(): TracerProvider;
    getSpanContext(context: Context): SpanContext | undefined;
    setSpanContext(context: Context, spanContext: SpanContext): Context;
    setSpan(context: Context, span: Span): Context;
    isSpanContextValid(spanContext: SpanContext): boolean;
  };
  context: { active(): Context; with<T>(context: Context, fn: () => T): T };
  createTraceState?(raw: string): { serialize(): string };
  ROOT_CONTEXT: Context;
  ProxyTracerProvider: new () => TracerProvider;
  SpanKind: { PRODUCER: number; CONSUMER: number };
  SpanStatusCode: { ERROR: number };
}

/**
 * Where `@opentelemetry/api` (major version 1) keeps what an SDK registers: a tracer provider, a
 * context manager. Read without loading the API, which costs a process about 7 MB.
 */
const OPENTELEMETRY_GLOBALS = Symbol.for('opentelemetry.js.api.1');

/** Whether something registered a tracer provider with OpenTelemetry's API in this process. */
function tracerProviderRegistered(): boolean {
  const globals = (globalThis as Record<symbol, { trace?: unknown } | undefined>)[
    OPENTELEMETRY_GLOBALS
  ];
  return globals?.trace !== undefined;
}

/**
 * `@opentelemetry/api` if it is installed, loaded once, and only once a tracer provider was
 * registered: an app that never sets up OpenTelemetry does not pay for loading it.
 */
let openTelemetry: OpenTelemetryApi | null | undefined;
function loadOpenTelemetry(): OpenTelemetryApi | undefined {
  if (openTelemetry === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      openTelemetry = require('@opentelemetry/api') as OpenTelemetryApi;
    } catch {
      openTelemetry = null;
    }
  }
  return openTelemetry ?? undefined;
}

/** What a publish adds to its message, and how it ends its span. */
export interface PublishTrace {
  /** `traceparent` (and `tracestate`) for the message's headers. */
  readonly headers: MessageHeaders;
  /** Ends the publish span (when there is one), failed when `error` is given. */
  end(error?: unknown): void;
}

const NOTHING_TO_END: PublishTrace['end'] = () => undefined;
/** The headers of a publish outside any trace: none (shared, frozen). */
export const NO_TRACE_HEADERS: MessageHeaders = Object.freeze({});
const NOT_TRACED: PublishTrace = Object.freeze({ headers: NO_TRACE_HEADERS, end: NOTHING_TO_END });

/** Who published or handles a message, for span names and attributes. */
export interface TracedMessage {
  readonly topic?: string;
  readonly queue?: string;
  readonly messageId: string;
  readonly correlationId?: string;
}

/**
 * Trace context through messages: each publish carries a W3C `traceparent` continuing the trace of
 * the code that published it, and each handler runs in a scope of that trace (`currentMessage()`).
 * With `@opentelemetry/api` installed and a tracer provider registered (your OpenTelemetry SDK set-up),
 * a PRODUCER span per publish (`send <topic>`) and a CONSUMER span per delivery (`process <topic>`),
 * child of the producer's span on every attempt, and the handler runs with it as active span.
 */
export class MessagingTracer {
  /** OpenTelemetry's API and this library's tracer, once a provider was registered. */
  private api?: OpenTelemetryApi;
  private tracer?: Tracer;
  /** What the global provider delegates to while no SDK registered one: OpenTelemetry's no-op. */
  private noProvider: unknown;

  private readonly spans: boolean;
  private readonly scope: RequestContextMode;

  /**
   * `system` names the broker in span attributes (`rabbitmq`); `spans: false` creates none; `scope`
   * says when handlers run with `currentMessage()` (the module's `requestContext`).
   */
  constructor(
    private readonly system: string,
    { spans = true, scope = 'auto' }: { spans?: boolean; scope?: RequestContextMode } = {},
  ) {
    this.spans = spans;
    this.scope = scope;
  }

  /**
   * OpenTelemetry, while a tracer provider is registered. Without one its no-op spans would cost a
   * delivery several microseconds for nothing, so none is made (and the API is not even loaded).
   */
  private get otel(): OpenTelemetryApi | undefined {
    if (!this.spans || !tracerProviderRegistered()) return undefined;
    const api = this.api ?? this.loadApi();
    if (!api) return undefined;
    const delegate = api.trace.getTracerProvider().getDelegate?.();
    return delegate === undefined || delegate !== this.noProvider ? api : undefined;
  }

  private loadApi(): OpenTelemetryApi | undefined {
    const api = loadOpenTelemetry();
    if (api) {
      this.tracer = api.trace.getTracer('nest-messaging');
      this.noProvider = new api.ProxyTracerProvider().getDelegate?.();
      this.api = api;
    }
    return api;
  }

  /** Starts the trace of one publish; `headers` are the message's own (a `traceparent` there wins). */
  publish(message: TracedMessage, headers: MessageHeaders): PublishTrace {
    if (headers[TRACEPARENT] !== undefined) return NOT_TRACED;
    const handling = scopedMessage();
    const otel = this.otel;
    if (otel) {
      const active = otel.context.active();
      const parent = otel.trace.getSpanContext(active)
        ? active
        : handling
          ? otel.trace.setSpanContext(active, remoteSpanContext(otel, fromScope(handling)))
          : active;
      const span = (this.tracer as Tracer).startSpan(
        `send ${destination(message)}`,
        { kind: otel.SpanKind.PRODUCER, attributes: this.attributes(message, 'send') },
        parent,
      );
      // A span the sampler dropped still has its ids and an unsampled flag: those travel, so the
      // consumers follow the sampler's decision.
      if (otel.trace.isSpanContextValid(span.spanContext())) {
        return {
          headers: headersOf(fromSpanContext(span.spanContext())),
          end: (error) => endSpan(otel, span, error),
        };
      }
      span.end();
    }
    // Outside any trace nothing is added: the first handler of the message starts one.
    if (!handling) return NOT_TRACED;
    return { headers: headersOf(child(fromScope(handling))), end: NOTHING_TO_END };
  }

  /**
   * Whether {@link handle} has anything to do for `delivery`: a span to make (a tracer provider is
   * registered) or a scope to enter. When not, the server runs the handler as it is: a delivery
   * nobody traces costs nothing here, not even the parsing of its `traceparent`.
   */
  handles(delivery: Delivery): boolean {
    return this.otel !== undefined || this.scoped(delivery);
  }

  /**
   * Whether the handling of `delivery` enters the scope: `requestContext: true`; or `'auto'` once
   * something read `currentMessage()`, or for a message that carries a trace (someone upstream
   * traces: what the handler publishes continues it).
   */
  private scoped(delivery: Delivery): boolean {
    if (this.scope === 'auto' && delivery.headers[TRACEPARENT] !== undefined) return true;
    return enterScope(this.scope);
  }

  /**
   * Runs `work` (the handling of `delivery` by `handler` of `service`) in the delivery's trace: in a
   * CONSUMER span while a tracer provider is registered (recorded or not, as its sampler decides),
   * and as `currentMessage()` when the scope is wanted (see {@link scoped}; with spans, unless
   * `requestContext` is `false`: OpenTelemetry's context manager pays for the hooks then).
   */
  handle<T>(
    delivery: Delivery,
    handler: string,
    service: string,
    work: () => Promise<T>,
  ): Promise<T> {
    const otel = this.otel;
    if (!otel && !this.scoped(delivery)) return work();
    const remote = parseTraceparent(delivery.headers[TRACEPARENT], delivery.headers[TRACESTATE]);
    if (otel) {
      const parent = remote
        ? otel.trace.setSpanContext(otel.ROOT_CONTEXT, remoteSpanContext(otel, remote))
        : otel.ROOT_CONTEXT;
      const span = (this.tracer as Tracer).startSpan(
        `process ${delivery.topic}`,
        {
          kind: otel.SpanKind.CONSUMER,
          attributes: {
            ...this.attributes(delivery, 'process'),
            'messaging.consumer.group.name': service,
            'messaging.destination.subscription.name': delivery.queue,
            'messaging.nest.handler': handler,
            'messaging.nest.attempt': delivery.attempt,
          },
        },
        parent,
      );
      if (otel.trace.isSpanContextValid(span.spanContext())) {
        const own = fromSpanContext(span.spanContext());
        const scope = scopeOf(delivery, handler, service, own);
        return otel.context.with(otel.trace.setSpan(parent, span), () =>
          (this.scope !== false ? runWithMessage(scope, work) : work()).then(
            (result) => {
              span.end();
              return result;
            },
            (error: unknown) => {
              endSpan(otel, span, error);
              throw error;
            },
          ),
        );
      }
      span.end();
    }
    const own = remote ? child(remote) : rootOf(delivery.messageId);
    return runWithMessage(scopeOf(delivery, handler, service, own), work);
  }

  private attributes(
    message: TracedMessage,
    operation: 'send' | 'process',
  ): Record<string, string> {
    return {
      'messaging.system': this.system,
      'messaging.operation.type': operation,
      'messaging.operation.name': operation,
      'messaging.destination.name': destination(message),
      'messaging.message.id': message.messageId,
      ...(message.correlationId !== undefined
        ? { 'messaging.message.conversation_id': message.correlationId }
        : {}),
    };
  }
}

function destination(message: TracedMessage): string {
  return message.topic ?? message.queue ?? 'unknown';
}

function scopeOf(
  delivery: Delivery,
  handler: string,
  service: string,
  trace: TraceContext,
): CurrentMessage {
  return {
    messageId: delivery.messageId,
    correlationId: delivery.correlationId,
    traceId: trace.traceId,
    spanId: trace.spanId,
    traceFlags: trace.flags,
    traceState: trace.state,
    topic: delivery.topic,
    service,
    route: handler,
    attempt: delivery.attempt,
  };
}

function fromScope(message: CurrentMessage): TraceContext {
  return {
    traceId: message.traceId,
    spanId: message.spanId,
    flags: message.traceFlags,
    state: message.traceState,
  };
}

function fromSpanContext(context: SpanContext): TraceContext {
  const state = context.traceState?.serialize();
  return {
    traceId: context.traceId,
    spanId: context.spanId,
    flags: context.traceFlags,
    ...(state ? { state } : {}),
  };
}

function remoteSpanContext(otel: OpenTelemetryApi, trace: TraceContext): SpanContext {
  return {
    traceId: trace.traceId,
    spanId: trace.spanId,
    traceFlags: trace.flags,
    isRemote: true,
    ...(trace.state && otel.createTraceState
      ? { traceState: otel.createTraceState(trace.state) }
      : {}),
  };
}

/** A new span in `parent`'s trace. */
function child(parent: TraceContext): TraceContext {
  return { ...parent, spanId: newSpanId() };
}

/**
 * The trace of a message published outside any trace: its id comes from the message id, so every
 * attempt, the dead letter and the replay of the message share it. Sampled: a consumer that traces
 * decides for itself.
 */
function rootOf(messageId: string): TraceContext {
  return { traceId: traceIdOf(messageId), spanId: newSpanId(), flags: 1 };
}

function headersOf(trace: TraceContext): MessageHeaders {
  const traceparent = formatTraceparent(trace);
  return trace.state
    ? { [TRACEPARENT]: traceparent, [TRACESTATE]: trace.state }
    : { [TRACEPARENT]: traceparent };
}

function endSpan(otel: OpenTelemetryApi, span: Span, error: unknown): void {
  if (error !== undefined) {
    const failure =
      error instanceof Error ? error : new Error(JSON.stringify(error) ?? 'undefined');
    span.recordException(failure);
    span.setStatus({ code: otel.SpanStatusCode.ERROR, message: failure.message });
  }
  span.end();
}
