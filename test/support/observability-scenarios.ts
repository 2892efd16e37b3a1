import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import {
  type BrokerBackend,
  Consume,
  type CurrentMessage,
  currentMessage,
  DeadLetterService,
  MessageContext,
  MessageProducer,
  MessagingPublisher,
} from '@app/messaging';
import { traceIdOf } from '../../libs/messaging/src/observability/trace-context';
import { FAST_RETRY, useContractHarness, waitFor } from '@app/messaging/testing';
import { parentOf, useOpenTelemetry } from './open-telemetry';

/**
 * Tracing through a backend (SPEC-free, issue 11): W3C trace context in the headers of every copy
 * of a message (retry, dead letter, replay), OpenTelemetry spans linked producer -> consumer, and
 * `currentMessage()` in handlers.
 */
export function describeTracing(
  name: string,
  createBackend: () => BrokerBackend,
  servicePrefix = 'trace',
): void {
  describe(`tracing: ${name}`, () => {
    const otel = useOpenTelemetry();
    const h = useContractHarness(createBackend, { servicePrefix });
    const spans = (kind: SpanKind, spanName: string): ReadableSpan[] =>
      otel.spans().filter((s) => s.kind === kind && s.name === spanName);

    it('makes each attempt a child of the producer span, and what a handler publishes its child', async () => {
      const { service, topic } = h.unique();
      const seen: CurrentMessage[] = [];
      @Controller()
      class Handler {
        constructor(private readonly publisher: MessagingPublisher) {}
        @Consume(topic)
        async handle(@Ctx() ctx: MessageContext) {
          seen.push(currentMessage() as CurrentMessage);
          if (ctx.attempt === 1) throw new Error('transient');
          await new MessageProducer({ topic: `${topic}.next` }, this.publisher).publish({});
        }
        @Consume(`${topic}.next`)
        next() {
          seen.push(currentMessage() as CurrentMessage);
        }
      }
      const app = await h.start(service, [Handler], { retry: FAST_RETRY });
      const producer = new MessageProducer({ topic }, app.get(MessagingPublisher));
      const root = await trace.getTracer('test').startActiveSpan('place order', async (span) => {
        await producer.publish({}, { messageId: 'traced-1', correlationId: 'order-1' });
        span.end();
        return span.spanContext();
      });
      await waitFor(() => spans(SpanKind.CONSUMER, `process ${topic}.next`).length === 1, {
        message: 'the chain handled, and its spans ended',
      });

      const [send] = spans(SpanKind.PRODUCER, `send ${topic}`);
      const attempts = spans(SpanKind.CONSUMER, `process ${topic}`);
      const [sendNext] = spans(SpanKind.PRODUCER, `send ${topic}.next`);
      const [processNext] = spans(SpanKind.CONSUMER, `process ${topic}.next`);
      expect(parentOf(send)).toBe(root.spanId);
      expect(attempts.map((s) => s.attributes['messaging.nest.attempt']).sort()).toEqual([1, 2]);
      for (const attempt of attempts) {
        expect(attempt.spanContext().traceId).toBe(root.traceId);
        expect(parentOf(attempt)).toBe(send.spanContext().spanId);
      }
      const failed = attempts.find((s) => s.attributes['messaging.nest.attempt'] === 1);
      expect(failed?.status.code).toBe(SpanStatusCode.ERROR);
      const second = attempts.find((s) => s.attributes['messaging.nest.attempt'] === 2);
      expect(parentOf(sendNext)).toBe(second?.spanContext().spanId);
      expect(parentOf(processNext)).toBe(sendNext.spanContext().spanId);
      expect(send.attributes).toMatchObject({
        'messaging.destination.name': topic,
        'messaging.message.id': 'traced-1',
        'messaging.message.conversation_id': 'order-1',
        'messaging.operation.type': 'send',
      });

      // The handler's scope: the message, the trace, the span of its handling.
      expect(seen.map((m) => [m.messageId, m.attempt, m.correlationId, m.traceId])).toEqual([
        ['traced-1', 1, 'order-1', root.traceId],
        ['traced-1', 2, 'order-1', root.traceId],
        [expect.any(String), 1, expect.any(String), root.traceId],
      ]);
      expect(seen[1].spanId).toBe(second?.spanContext().spanId);
    });

    it('keeps the trace through a dead letter and its replay', async () => {
      const { service, topic } = h.unique();
      let fixed = false;
      const traceparents: unknown[] = [];
      @Controller()
      class Handler {
        @Consume(topic)
        handle(@Payload() _body: unknown, @Ctx() ctx: MessageContext) {
          traceparents.push(ctx.headers.traceparent);
          if (!fixed) throw new Error('broken until fixed');
        }
      }
      const app = await h.start(service, [Handler], { retry: false });
      await new MessageProducer({ topic }, app.get(MessagingPublisher)).publish({});
      const deadLetters = app.get(DeadLetterService);
      let letters: Awaited<ReturnType<DeadLetterService['list']>> = [];
      await waitFor(async () => (letters = await deadLetters.list()).length === 1);
      expect(letters[0].headers.traceparent).toBe(traceparents[0]);
      fixed = true;
      expect(await deadLetters.replay(letters[0].id)).toBe(true);
      await waitFor(() => spans(SpanKind.CONSUMER, `process ${topic}`).length === 2);
      const [send] = spans(SpanKind.PRODUCER, `send ${topic}`);
      for (const handled of spans(SpanKind.CONSUMER, `process ${topic}`)) {
        expect(parentOf(handled)).toBe(send.spanContext().spanId);
      }
      expect(traceparents[1]).toBe(traceparents[0]);
    });

    it("ends a request's span with its reply, failed when the handler failed", async () => {
      const { service, topic } = h.unique();
      @Controller()
      class Handler {
        @Consume(topic)
        handle(@Payload() body: { fail: boolean }) {
          if (body.fail) throw new Error('no such order');
          return { ok: true };
        }
      }
      const app = await h.start(service, [Handler]);
      const producer = new MessageProducer({ topic }, app.get(MessagingPublisher));
      await expect(producer.request({ fail: false })).resolves.toEqual({ ok: true });
      await expect(producer.request({ fail: true })).rejects.toThrow('no such order');
      await waitFor(() => spans(SpanKind.PRODUCER, `send ${topic}`).length === 2);
      expect(
        spans(SpanKind.PRODUCER, `send ${topic}`)
          .map((s) => s.status.code)
          .sort(),
      ).toEqual([SpanStatusCode.UNSET, SpanStatusCode.ERROR].sort());
    });

    it('carries the trace id without spans (tracing: false)', async () => {
      const { service, topic } = h.unique();
      const seen: { scope: CurrentMessage; header: unknown }[] = [];
      @Controller()
      class Handler {
        @Consume(topic)
        handle(@Ctx() ctx: MessageContext) {
          seen.push({ scope: currentMessage() as CurrentMessage, header: ctx.headers.traceparent });
          if (ctx.attempt === 1) throw new Error('transient');
        }
      }
      const app = await h.start(service, [Handler], { retry: FAST_RETRY, tracing: false });
      const producer = new MessageProducer({ topic }, app.get(MessagingPublisher));
      // Published outside any trace: no header; the trace id comes from the message id, on every attempt.
      const id = await producer.publish({});
      await waitFor(() => seen.length === 2);
      expect(seen.map((s) => s.header)).toEqual([undefined, undefined]);
      expect(seen.map((s) => s.scope.traceId)).toEqual([traceIdOf(id), traceIdOf(id)]);
      expect(traceIdOf(id)).toBe(id.replace(/-/g, ''));
      expect(otel.spans().filter((s) => s.name.endsWith(topic))).toEqual([]);
    });
  });
}
