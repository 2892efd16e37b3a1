import type * as Api from '@opentelemetry/api';
import type { Delivery } from '../backend/broker-backend.interface';
import type * as TracerModule from './messaging-tracer';

const delivery: Delivery = {
  body: Buffer.from('{}'),
  topic: 'order.created',
  queue: 'payments.order.created',
  headers: {},
  messageId: 'm-1',
  attempt: 1,
  redelivered: false,
};

/**
 * A fresh copy of the tracer's module and of `@opentelemetry/api`, counting how often the tracer's
 * module loads the API.
 */
function isolated(): { tracer: typeof TracerModule; api: typeof Api; loads: () => number } {
  let loads = 0;
  let modules!: { tracer: typeof TracerModule; api: typeof Api };
  jest.isolateModules(() => {
    const api = jest.requireActual<typeof Api>('@opentelemetry/api');
    jest.doMock('@opentelemetry/api', () => {
      loads++;
      return api;
    });
    modules = { tracer: jest.requireActual('./messaging-tracer'), api };
  });
  return { ...modules, loads: () => loads };
}

describe('MessagingTracer without OpenTelemetry set up', () => {
  it('loads no OpenTelemetry, adds no header and enters no scope until a provider is registered', async () => {
    const { tracer: module, api, loads } = isolated();
    const tracer = new module.MessagingTracer('memory');
    expect(tracer.publish({ topic: 'order.created', messageId: 'm-1' }, {}).headers).toEqual({});
    expect(tracer.handles(delivery)).toBe(false);
    await expect(
      tracer.handle(delivery, 'Payments.charge', 'payments', async () => 'done'),
    ).resolves.toBe('done');
    expect(loads()).toBe(0);

    // An SDK registers a provider: from then on spans are made, with the API loaded once.
    const { BasicTracerProvider } = jest.requireActual<
      typeof import('@opentelemetry/sdk-trace-base')
    >('@opentelemetry/sdk-trace-base');
    api.trace.setGlobalTracerProvider(new BasicTracerProvider());
    try {
      expect(tracer.handles(delivery)).toBe(true);
      const trace = tracer.publish({ topic: 'order.created', messageId: 'm-2' }, {});
      expect(trace.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      trace.end();
      expect(loads()).toBe(1);
    } finally {
      api.trace.disable();
    }
  });
});

describe('MessagingTracer spans (memory backend, semantic conventions)', () => {
  const { SpanKind, context, trace } = jest.requireActual<typeof Api>('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = jest.requireActual<
    typeof import('@opentelemetry/context-async-hooks')
  >('@opentelemetry/context-async-hooks');
  const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = jest.requireActual<
    typeof import('@opentelemetry/sdk-trace-base')
  >('@opentelemetry/sdk-trace-base');
  const exporter = new InMemorySpanExporter();
  beforeAll(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
  });
  afterEach(() => exporter.reset());
  afterAll(() => {
    trace.disable();
    context.disable();
  });
  const { MessagingTracer } = jest.requireActual<typeof TracerModule>('./messaging-tracer');
  const { InMemoryBackend } =
    jest.requireActual<typeof import('../backends/memory')>('../backends/memory');

  it('names its spans `{operation} {destination}` and sets the messaging attributes', async () => {
    const tracer = new MessagingTracer('memory', { spans: 'library' });
    const sent = tracer.publish(
      { topic: 'order.created', messageId: 'm-1', correlationId: 'c-1', bodySize: 2 },
      {},
    );
    sent.end();
    await expect(
      tracer.handle(delivery, 'Payments.charge', 'payments', () =>
        Promise.reject(new RangeError('no')),
      ),
    ).rejects.toThrow('no');
    const [send, process] = exporter.getFinishedSpans();
    expect(send.name).toBe('send order.created');
    expect(send.kind).toBe(SpanKind.PRODUCER);
    expect(send.attributes).toEqual({
      'messaging.system.name': 'memory',
      'messaging.system': 'memory',
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'send',
      'messaging.destination.name': 'order.created',
      'messaging.message.id': 'm-1',
      'messaging.message.conversation_id': 'c-1',
      'messaging.message.body.size': 2,
    });
    expect(process.name).toBe('process order.created');
    expect(process.kind).toBe(SpanKind.CONSUMER);
    expect(process.attributes).toEqual({
      'messaging.system.name': 'memory',
      'messaging.system': 'memory',
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.destination.name': 'order.created',
      'messaging.message.id': 'm-1',
      'messaging.message.body.size': 2,
      'messaging.consumer.group.name': 'payments',
      'messaging.destination.subscription.name': 'payments.order.created',
      'messaging.nest.handler': 'Payments.charge',
      'messaging.nest.attempt': 1,
      'error.type': 'RangeError',
    });
  });

  it("'instrumentation': suppresses spans inside the publish, and handles in the active consumer span", async () => {
    const tracer = new MessagingTracer('rabbitmq', { spans: 'instrumentation' });
    const backend = new InMemoryBackend();
    let inside: Api.Span | undefined;
    backend.publish = () => {
      inside = trace.getTracer('client').startSpan('publish x');
      inside.end();
      return Promise.resolve();
    };
    const sent = tracer.publish({ topic: 'order.created', messageId: 'm-1' }, {});
    await sent.send(backend, {} as never, { mandatory: false });
    sent.end();
    expect(inside?.isRecording()).toBe(false);

    const theirs = trace.getTracer('client').startSpan('q process', { kind: SpanKind.CONSUMER });
    const handledIn = await context.with(trace.setSpan(context.active(), theirs), () =>
      tracer.handle(
        delivery,
        'Payments.charge',
        'payments',
        async () => trace.getActiveSpan()?.spanContext().spanId,
      ),
    );
    theirs.end();
    expect(handledIn).toBe(theirs.spanContext().spanId);
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual(['send order.created', 'process order.created']);
    expect(spans[1].attributes).toMatchObject({
      'messaging.operation.type': 'process',
      'messaging.rabbitmq.destination.routing_key': 'order.created',
      'messaging.consumer.group.name': 'payments',
    });
  });
});
