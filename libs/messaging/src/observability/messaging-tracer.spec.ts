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
