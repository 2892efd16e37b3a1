import type {
  BackendPublishOptions,
  BackendRequestOptions,
  BrokerBackend,
  Delivery,
  IncomingReply,
  MessageHeaders,
  OutgoingMessage,
} from '../backend/broker-backend.interface';
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
import {
  destination,
  failureOf,
  messageAttributes,
  processAttributes,
  type TracedMessage,
} from './messaging-semconv';
import {
  type Context,
  loadOpenTelemetry,
  type OpenTelemetryApi,
  type Span,
  type SpanContext,
  type Tracer,
  tracerProviderRegistered,
} from './open-telemetry-api';
import { spanPlan, SUPPRESS_TRACING_KEY, type TracingSpans } from './tracing-spans';

/** What a publish adds to its message, how it reaches the backend, and how it ends its span. */
export interface PublishTrace {
  /** `traceparent` (and `tracestate`) for the message's headers. */
  readonly headers: MessageHeaders;
  /**
   * `backend.publish(message, options)`: with tracing suppressed when the library's span stands for
   * the broker client's instrumentation's (see `tracing-spans.ts`), else as it is.
   */
  send(
    backend: BrokerBackend,
    message: OutgoingMessage,
    options: BackendPublishOptions,
  ): Promise<void>;
  /** `backend.request(message, options)`, as {@link send} publishes. */
  request(
    backend: BrokerBackend,
    message: OutgoingMessage,
    options: BackendRequestOptions,
  ): Promise<IncomingReply>;
  /** Ends the publish span (when there is one), failed when `error` is given. */
  end(error?: unknown): void;
}

const NOTHING_TO_END: PublishTrace['end'] = () => undefined;
/** How a publish nobody's instrumentation doubles reaches the backend: directly (shared). */
const DIRECT: Pick<PublishTrace, 'send' | 'request'> = Object.freeze({
  send: (backend, message, options) => backend.publish(message, options),
  request: (backend, message, options) => backend.request(message, options),
});
/** The headers of a publish outside any trace: none (shared, frozen). */
export const NO_TRACE_HEADERS: MessageHeaders = Object.freeze({});
const NOT_TRACED: PublishTrace = Object.freeze({
  headers: NO_TRACE_HEADERS,
  end: NOTHING_TO_END,
  ...DIRECT,
});

export type { TracedMessage } from './messaging-semconv';

/**
 * Trace context through messages: each publish carries a W3C `traceparent` continuing the trace of
 * the code that published it, and each handler runs in a scope of that trace (`currentMessage()`).
 * With `@opentelemetry/api` installed and a tracer provider registered (your OpenTelemetry SDK set-up),
 * a PRODUCER span per publish (`send <topic>`) and a CONSUMER span per delivery (`process <topic>`),
 * child of the producer's span on every attempt, and the handler runs with it as active span. With
 * OpenTelemetry's instrumentation of the broker's client registered too, the CONSUMER span is the
 * instrumentation's and the instrumentation makes no PRODUCER span (`tracing-spans.ts`).
 */
export class MessagingTracer {
  /** OpenTelemetry's API and this library's tracer, once a provider was registered. */
  private api?: OpenTelemetryApi;
  private tracer?: Tracer;
  /** What the global provider delegates to while no SDK registered one: OpenTelemetry's no-op. */
  private noProvider: unknown;

  private readonly spans: TracingSpans;
  private readonly scope: RequestContextMode;
  private readonly instrumented: () => boolean;

  /**
   * `system` names the broker in span attributes (`rabbitmq`); `spans` says which spans to make
   * (`false`: none; `true` is `'auto'`); `scope` says when handlers run with `currentMessage()` (the
   * module's `requestContext`); `instrumented` whether the backend sees OpenTelemetry's
   * instrumentation of its client registered (`BrokerBackend.clientInstrumented`), read only while
   * spans are made in `'auto'` mode.
   */
  constructor(
    private readonly system: string,
    {
      spans = 'auto',
      scope = 'auto',
      instrumented = () => false,
    }: {
      spans?: true | TracingSpans;
      scope?: RequestContextMode;
      instrumented?: () => boolean;
    } = {},
  ) {
    this.spans = spans === true ? 'auto' : spans;
    this.scope = scope;
    this.instrumented = instrumented;
  }

  /**
   * OpenTelemetry, while a tracer provider is registered. Without one its no-op spans would cost a
   * delivery several microseconds for nothing, so none is made (and the API is not even loaded).
   */
  private get otel(): OpenTelemetryApi | undefined {
    if (this.spans === false || !tracerProviderRegistered()) return undefined;
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
        {
          kind: otel.SpanKind.PRODUCER,
          attributes: messageAttributes(this.system, message, 'send'),
        },
        parent,
      );
      // A span the sampler dropped still has its ids and an unsampled flag: those travel, so the
      // consumers follow the sampler's decision.
      if (otel.trace.isSpanContextValid(span.spanContext())) {
        return {
          headers: headersOf(fromSpanContext(span.spanContext())),
          end: (error) => endSpan(otel, span, error),
          ...(spanPlan(this.spans as Exclude<TracingSpans, false>, this.instrumented) === 'shared'
            ? suppressed(otel, active.setValue(SUPPRESS_TRACING_KEY, true))
            : DIRECT),
        };
      }
      span.end();
    }
    // Outside any trace nothing is added: the first handler of the message starts one.
    if (!handling) return NOT_TRACED;
    return { headers: headersOf(child(fromScope(handling))), end: NOTHING_TO_END, ...DIRECT };
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
    if (
      otel &&
      spanPlan(this.spans as Exclude<TracingSpans, false>, this.instrumented) === 'shared'
    ) {
      const theirs = otel.trace.getSpan(otel.context.active());
      if (theirs && otel.trace.isSpanContextValid(theirs.spanContext())) {
        return this.within(otel, theirs, delivery, handler, service, work);
      }
    }
    const remote = parseTraceparent(delivery.headers[TRACEPARENT], delivery.headers[TRACESTATE]);
    if (otel) {
      const parent = remote
        ? otel.trace.setSpanContext(otel.ROOT_CONTEXT, remoteSpanContext(otel, remote))
        : otel.ROOT_CONTEXT;
      const span = (this.tracer as Tracer).startSpan(
        `process ${delivery.topic}`,
        {
          kind: otel.SpanKind.CONSUMER,
          attributes: processAttributes(this.system, delivery, handler, service),
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

  /**
   * Runs `work` in `span`, the CONSUMER span the broker client's instrumentation made and keeps
   * active (it ends it on ack or nack): named and described as the library's own would be, failed
   * when the handler throws.
   */
  private within<T>(
    otel: OpenTelemetryApi,
    span: Span,
    delivery: Delivery,
    handler: string,
    service: string,
    work: () => Promise<T>,
  ): Promise<T> {
    if (span.isRecording()) {
      span.updateName(`process ${delivery.topic}`);
      span.setAttributes(processAttributes(this.system, delivery, handler, service));
    }
    const scope = scopeOf(delivery, handler, service, fromSpanContext(span.spanContext()));
    return (this.scope !== false ? runWithMessage(scope, work) : work()).catch((error: unknown) => {
      failSpan(otel, span, error);
      throw error;
    });
  }
}

/** `publish` and `request` through the backend with tracing suppressed in `context`. */
function suppressed(
  otel: OpenTelemetryApi,
  context: Context,
): Pick<PublishTrace, 'send' | 'request'> {
  return {
    send: (backend, message, options) =>
      otel.context.with(context, backend.publish, backend, message, options),
    request: (backend, message, options) =>
      otel.context.with(context, backend.request, backend, message, options),
  };
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
  if (error !== undefined) failSpan(otel, span, error);
  span.end();
}

/** Records `error` on `span`: the exception, `error.type` and an error status. */
function failSpan(otel: OpenTelemetryApi, span: Span, error: unknown): void {
  const { failure, type } = failureOf(error);
  span.recordException(failure);
  span.setAttribute('error.type', type);
  span.setStatus({ code: otel.SpanStatusCode.ERROR, message: failure.message });
}
