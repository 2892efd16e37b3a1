/**
 * OpenTelemetry's API as the library uses it: the parts of `@opentelemetry/api` read (typed here, so
 * that its types need not be installed), loaded only once a tracer provider was registered.
 */

/** A span's ids (`SpanContext` of `@opentelemetry/api`). */
export interface SpanContext {
  traceId: string;
  spanId: string;
  traceFlags: number;
  isRemote?: boolean;
  traceState?: { serialize(): string };
}
/** A span, as the library reads and ends it. */
export interface Span {
  spanContext(): SpanContext;
  isRecording(): boolean;
  setAttribute(key: string, value: string | number | boolean): unknown;
  setAttributes(attributes: Record<string, string | number>): unknown;
  updateName(name: string): unknown;
  setStatus(status: { code: number; message?: string }): unknown;
  recordException(exception: unknown): unknown;
  end(): void;
}
/** An OpenTelemetry context (immutable: `setValue` returns a new one). */
export interface Context {
  setValue(key: symbol, value: unknown): Context;
}
/** A tracer. */
export interface Tracer {
  startSpan(name: string, options: Record<string, unknown>, context?: Context): Span;
}
/** The global tracer provider (a proxy that delegates to the SDK's). */
export interface TracerProvider {
  getDelegate?(): unknown;
}
/** `@opentelemetry/api` (major version 1), the parts used. */
export interface OpenTelemetryApi {
  trace: {
    getTracer(name: string, version?: string): Tracer;
    getTracerProvider(): TracerProvider;
    getSpanContext(context: Context): SpanContext | undefined;
    getSpan(context: Context): Span | undefined;
    setSpanContext(context: Context, spanContext: SpanContext): Context;
    setSpan(context: Context, span: Span): Context;
    isSpanContextValid(spanContext: SpanContext): boolean;
  };
  context: {
    active(): Context;
    with<A extends unknown[], T>(
      context: Context,
      fn: (...args: A) => T,
      thisArg?: unknown,
      ...args: A
    ): T;
  };
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
export function tracerProviderRegistered(): boolean {
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
export function loadOpenTelemetry(): OpenTelemetryApi | undefined {
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
