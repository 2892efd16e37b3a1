/**
 * Who makes the spans of a message when OpenTelemetry's own instrumentation of the broker's client
 * (`@opentelemetry/instrumentation-amqplib`) is registered too: without a decision, one publish
 * makes two PRODUCER spans (ours, its) and one delivery two CONSUMER spans.
 *
 * | `tracing.spans`     | client instrumented (`BrokerBackend.clientInstrumented`) | PRODUCER span              | CONSUMER span                                   |
 * | ------------------- | -------------------------------------------------------- | -------------------------- | ----------------------------------------------- |
 * | `false`             | -                                                        | none                       | none (`traceparent` still travels)              |
 * | `'library'`         | -                                                        | ours (and the client's)    | ours (and the client's)                         |
 * | `'auto'` (default)  | no                                                       | ours                       | ours                                            |
 * | `'auto'` (default)  | yes                                                      | ours; the client's is suppressed | the client's, with our attributes, name and status |
 * | `'instrumentation'` | -                                                        | ours; the client's is suppressed | the client's (the span active when the handler starts), as above; ours when none is |
 *
 * Why the client's CONSUMER span and our PRODUCER span: the instrumentation starts its consumer span
 * in the client's message callback and ends it on ack or nack, out of our reach, whereas its
 * publish span is made inside the client's `publish` call, which the library can run with tracing
 * suppressed (OpenTelemetry's own switch, honoured by the SDK and the W3C propagator, so that our
 * `traceparent` stays in the headers); ours carries the current semantic conventions.
 */

/**
 * Which spans the library makes (`MessagingModule.forRoot({ tracing: { spans } })`); see the table
 * in `tracing-spans.ts`. `false`: none.
 */
export type TracingSpans = 'auto' | 'library' | 'instrumentation' | false;

/** Options of tracing (`MessagingModule.forRoot({ tracing })`). */
export interface TracingOptions {
  /**
   * Which spans the library makes once a tracer provider is registered: `'auto'` leaves the CONSUMER
   * span to OpenTelemetry's instrumentation of the broker's client when the backend sees it registered
   * (amqplib's: `@opentelemetry/instrumentation-amqplib`) and suppresses that instrumentation's
   * PRODUCER span, so that each message has one of each; `'library'` always makes the library's own
   * (duplicates with such an instrumentation); `'instrumentation'` always defers as `'auto'` does
   * when it detects one; `false` makes none.
   * @default 'auto'
   */
  spans?: TracingSpans;
}

/** How one message is traced once a tracer provider is registered: `'own'` or `'shared'` (see the table). */
export type SpanPlan = 'own' | 'shared';

/**
 * The plan for `spans` (never `false`: the caller makes no span then); `instrumented` is read only
 * in `'auto'` mode.
 */
export function spanPlan(
  spans: Exclude<TracingSpans, false>,
  instrumented: () => boolean,
): SpanPlan {
  if (spans === 'library') return 'own';
  if (spans === 'instrumentation') return 'shared';
  return instrumented() ? 'shared' : 'own';
}

/**
 * The context key of OpenTelemetry's `suppressTracing()` (`@opentelemetry/core`): its API makes keys
 * with `Symbol.for(description)`, so this is the SDK's own key without depending on the SDK.
 */
export const SUPPRESS_TRACING_KEY = Symbol.for('OpenTelemetry SDK Context Key SUPPRESS_TRACING');
