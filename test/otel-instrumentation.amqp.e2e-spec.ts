/**
 * OpenTelemetry's own amqplib instrumentation (`@opentelemetry/instrumentation-amqplib` 0.70) next
 * to the library's tracing (issue 23): with `tracing: true` (spans `'auto'`) one publish -> consume
 * makes one PRODUCER span (the library's; the instrumentation's is suppressed) and one CONSUMER span
 * (the instrumentation's, named and described by the library), its child; with `spans: 'library'`
 * both make theirs (documented duplicates).
 *
 * Jest's module registry does not go through Node's `require`, so the instrumentation's
 * require-in-the-middle hook never sees amqplib here: the spec applies the instrumentation's own
 * patches (its module definitions) to Jest's copy of amqplib, as the hook does in an app that
 * registers the instrumentation before it loads amqplib, and removes them at the end.
 */
import { randomUUID } from 'node:crypto';
import { Controller, Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { InstrumentationNodeModuleFile } from '@opentelemetry/instrumentation';
import { AmqplibInstrumentation } from '@opentelemetry/instrumentation-amqplib';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import {
  AmqpBackend,
  Consume,
  currentMessage,
  type MessageProducer,
  MessagingModule,
  type MessagingModuleOptions,
  MessagingServer,
  Producer,
} from '@app/messaging';
import { waitFor } from '@app/messaging/testing';
import { BROKER_URL, deleteBrokerObjects } from '../libs/messaging/src/testing/rabbitmq.fixture';

const RUN = randomUUID().slice(0, 8);
const EXCHANGE = `otel-${RUN}`;
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const instrumentation = new AmqplibInstrumentation();
/** The instrumentation's patches, applied to Jest's copy of amqplib (see the file comment). */
const patched: { file: InstrumentationNodeModuleFile; exports: unknown }[] = [];

beforeAll(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  instrumentation.setTracerProvider(provider);
  instrumentation.enable();
  for (const definition of instrumentation.getModuleDefinitions()) {
    for (const file of definition.files) {
      const path = require.resolve(`../node_modules/${file.name}`);
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const exports: unknown = require(path);
      file.patch(exports, '2.3.1');
      patched.push({ file, exports });
    }
  }
});

afterAll(async () => {
  for (const { file, exports } of patched) file.unpatch(exports);
  instrumentation.disable();
  await provider.shutdown();
  trace.disable();
  propagation.disable();
  context.disable();
  await deleteBrokerObjects(RUN);
}, 30_000);

afterEach(() => exporter.reset());

/** Starts an app that consumes `topic` (its first attempt fails for `{ failFirst: true }`) and publishes to it. */
async function start(topic: string, service: string, tracing: MessagingModuleOptions['tracing']) {
  const seen: { spanId?: string; messageId?: string; attempt: number }[] = [];

  @Controller()
  class Handler {
    @Consume(topic, { retry: { maxAttempts: 2, backoff: { initialDelayMs: 10 } } })
    handle(payload: { failFirst?: boolean }) {
      const inner = trace.getTracer('test').startSpan('handler work');
      inner.end();
      const attempt = seen.length + 1;
      seen.push({
        spanId: trace.getActiveSpan()?.spanContext().spanId,
        messageId: currentMessage()?.messageId,
        attempt,
      });
      if (payload.failFirst && attempt === 1) throw new TypeError('first attempt fails');
    }
  }

  @Injectable()
  class Orders {
    constructor(@Producer({ topic }) readonly producer: MessageProducer<object>) {}
  }

  const backend = new AmqpBackend({ url: BROKER_URL, exchange: EXCHANGE });
  const moduleRef = await Test.createTestingModule({
    imports: [
      MessagingModule.forRoot({
        service,
        backend,
        tracing,
      }),
    ],
    controllers: [Handler],
    providers: [Orders],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  app.connectMicroservice({ strategy: app.get(MessagingServer) }, { inheritAppConfig: true });
  await app.startAllMicroservices();
  await app.init();
  return { app, seen, backend, producer: app.get(Orders).producer };
}

const of = (kind: SpanKind): ReadableSpan[] =>
  exporter.getFinishedSpans().filter((s) => s.kind === kind);
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

describe('with @opentelemetry/instrumentation-amqplib registered', () => {
  it("'auto': one send span (the library's) and one process span (the instrumentation's), its child", async () => {
    const topic = `otel${RUN}.auto`;
    const service = `otel-${RUN}-auto`;
    const { app, seen, backend, producer } = await start(topic, service, true);
    try {
      expect(backend.clientInstrumented).toBe(true);
      await producer.publish({}, { messageId: `m-${RUN}`, correlationId: `c-${RUN}` });
      await waitFor(() => of(SpanKind.CONSUMER).length === 1 && seen.length === 1, {
        message: 'the delivery handled and acked (the instrumentation ends its span on ack)',
      });

      const sends = of(SpanKind.PRODUCER);
      const processes = of(SpanKind.CONSUMER);
      expect(sends).toHaveLength(1);
      expect(processes).toHaveLength(1);
      const [send] = sends;
      const [process] = processes;
      expect(send.instrumentationScope.name).toBe('nest-messaging');
      expect(process.instrumentationScope.name).toBe('@opentelemetry/instrumentation-amqplib');
      expect(send.name).toBe(`send ${topic}`);
      expect(process.name).toBe(`process ${topic}`);
      expect(process.spanContext().traceId).toBe(send.spanContext().traceId);
      expect(parentOf(process)).toBe(send.spanContext().spanId);
      expect(send.attributes).toMatchObject({
        'messaging.system.name': 'rabbitmq',
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'send',
        'messaging.destination.name': topic,
        'messaging.rabbitmq.destination.routing_key': topic,
        'messaging.message.id': `m-${RUN}`,
        'messaging.message.conversation_id': `c-${RUN}`,
        'messaging.message.body.size': 2,
      });
      expect(process.attributes).toMatchObject({
        'messaging.system.name': 'rabbitmq',
        'messaging.operation.type': 'process',
        'messaging.destination.name': topic,
        'messaging.message.id': `m-${RUN}`,
        'messaging.consumer.group.name': service,
        'messaging.destination.subscription.name': expect.stringContaining(service),
        'messaging.nest.handler': 'Handler.handle',
        'messaging.nest.attempt': 1,
      });
      // The handler ran in that one process span: a span it starts is its child.
      expect(seen[0]).toEqual({
        spanId: process.spanContext().spanId,
        messageId: `m-${RUN}`,
        attempt: 1,
      });
      const [inner] = exporter.getFinishedSpans().filter((s) => s.name === 'handler work');
      expect(parentOf(inner)).toBe(process.spanContext().spanId);
    } finally {
      await app.close();
    }
  });

  it("'auto': a failed attempt marks its process span failed, and the retry is handled", async () => {
    const topic = `otel${RUN}.retry`;
    const { app, seen, producer } = await start(topic, `otel-${RUN}-retry`, true);
    try {
      await producer.publish({ failFirst: true });
      await waitFor(() => of(SpanKind.CONSUMER).length === 2 && seen.length === 2, {
        message: 'both attempts handled and their spans ended',
      });
      const [send] = of(SpanKind.PRODUCER).filter((s) => s.name === `send ${topic}`);
      const attempts = of(SpanKind.CONSUMER);
      const first = attempts.find((s) => s.attributes['messaging.nest.attempt'] === 1);
      const second = attempts.find((s) => s.attributes['messaging.nest.attempt'] === 2);
      expect(first?.status.code).toBe(SpanStatusCode.ERROR);
      expect(first?.attributes['error.type']).toBe('TypeError');
      expect(second?.status.code).not.toBe(SpanStatusCode.ERROR);
      expect(parentOf(first as ReadableSpan)).toBe(send.spanContext().spanId);
      for (const attempt of attempts) {
        expect(attempt.spanContext().traceId).toBe(send.spanContext().traceId);
      }
    } finally {
      await app.close();
    }
  });

  it("'library': both make their spans (two of each), as before issue 23", async () => {
    const topic = `otel${RUN}.library`;
    const { app, seen, producer } = await start(topic, `otel-${RUN}-library`, {
      spans: 'library',
    });
    try {
      await producer.publish({});
      await waitFor(() => of(SpanKind.CONSUMER).length === 2 && seen.length === 1, {
        message: 'the delivery handled, both consumer spans ended',
      });
      const sends = of(SpanKind.PRODUCER);
      const processes = of(SpanKind.CONSUMER);
      const ours = (spans: ReadableSpan[]) =>
        spans.find((s) => s.instrumentationScope.name === 'nest-messaging') as ReadableSpan;
      const theirs = (spans: ReadableSpan[]) =>
        spans.find((s) => s.instrumentationScope.name !== 'nest-messaging') as ReadableSpan;
      expect(sends).toHaveLength(2);
      expect(processes).toHaveLength(2);
      expect(ours(sends).name).toBe(`send ${topic}`);
      expect(theirs(sends).name).toBe(`publish ${EXCHANGE}`);
      // The instrumentation's publish span overwrote the `traceparent`: both consumer spans hang
      // from it, and the library's send span has no child.
      expect(parentOf(theirs(processes))).toBe(theirs(sends).spanContext().spanId);
      expect(parentOf(ours(processes))).toBe(theirs(sends).spanContext().spanId);
      // The handler runs in the library's process span.
      expect(seen[0].spanId).toBe(ours(processes).spanContext().spanId);
    } finally {
      await app.close();
    }
  });
});
