/**
 * Whether OpenTelemetry's instrumentation of amqplib (`@opentelemetry/instrumentation-amqplib`, 0.70
 * on amqplib 2) is registered, read where it acts: on the prototypes of amqplib's channels, which it
 * wraps in place (shimmer's wrappers, as its `isWrapped()` tells them: `__wrapped: true` with the
 * `__original` function and an `__unwrap`) when amqplib's `lib/channel_model.js` loads after it was
 * registered, and unwraps on `disable()`.
 *
 * | method it wraps                                   | what the wrapper does                                  |
 * | ------------------------------------------------- | ------------------------------------------------------ |
 * | `ConfirmChannel.prototype.publish`                | a PRODUCER span per publish, its `traceparent` injected into the headers (over ours) |
 * | `Channel.prototype.publish`                       | the same, on a plain channel                           |
 * | `Channel.prototype.consume`                       | a CONSUMER span per message, active in the callback, ended on ack or nack |
 * | `ack`, `nack`, `reject`, `ackAll`, `nackAll`, `emit` | end those CONSUMER spans                            |
 *
 * Instrumented means both the confirm channel's `publish` (what the backend publishes with) and
 * `consume` are wrapped. Read per message while spans are made: two property reads on a prototype
 * remembered from the first channel, which also follow an `enable()` or `disable()` later on.
 */

/** A function shimmer wrapped (what `isWrapped()` of `@opentelemetry/instrumentation` checks). */
function isWrapped(fn: unknown): boolean {
  const wrapper = fn as { __wrapped?: unknown; __original?: unknown } | undefined;
  return (
    typeof fn === 'function' &&
    wrapper?.__wrapped === true &&
    typeof wrapper.__original === 'function'
  );
}

/** Watches the prototype of the backend's confirm channels for the instrumentation's wrappers. */
export class AmqplibInstrumentationProbe {
  private prototype?: { publish?: unknown; consume?: unknown };

  /** Remembers the prototype of `channel` (a confirm channel: its chain holds both methods). */
  saw(channel: object | undefined): void {
    if (channel && !this.prototype) this.prototype = Object.getPrototypeOf(channel) as object;
  }

  /** Whether the instrumentation wraps publish and consume now (false before any channel opened). */
  get instrumented(): boolean {
    const prototype = this.prototype;
    return prototype !== undefined && isWrapped(prototype.publish) && isWrapped(prototype.consume);
  }
}
