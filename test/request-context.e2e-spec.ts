import { Controller, Logger } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  Consume,
  currentMessage,
  InMemoryBackend,
  InMemoryBroker,
  MessageContext,
  MessageProducer,
  type MessagingModuleOptions,
  MessagingPublisher,
} from '@app/messaging';
import { useContractHarness, waitFor } from '@app/messaging/testing';
import { parseTraceparent, traceIdOf } from '../libs/messaging/src/observability/trace-context';

/**
 * When handlers run in the request scope (`requestContext`). Jest gives this file a module registry
 * of its own, so nothing has called `currentMessage()` before its first two tests (they run in order;
 * the second is the first to read it); `true` is checked the same way in
 * request-context-on.e2e-spec.ts.
 */
const broker = new InMemoryBroker();
const h = useContractHarness(() => new InMemoryBackend({ broker }), { servicePrefix: 'rctx' });

interface Seen {
  scoped: string;
  traceparent?: string;
}

/** An app whose handler reads `currentMessage()` after an await and forwards what it is told to. */
export async function startApp(options: Partial<MessagingModuleOptions>) {
  const { service, topic } = h.unique();
  const seen: Seen[] = [];
  const forwarded: Seen[] = [];
  @Controller()
  class Handler {
    constructor(private readonly publisher: MessagingPublisher) {}

    @Consume(topic)
    async handle(@Payload() body: { forward: boolean }): Promise<void> {
      await Promise.resolve(); // the scope must outlive an await
      seen.push({ scoped: currentMessage()?.messageId ?? 'none' });
      if (body.forward)
        await new MessageProducer({ topic: `${topic}.next` }, this.publisher).publish({});
    }

    @Consume(`${topic}.next`)
    next(@Ctx() ctx: MessageContext): void {
      forwarded.push({
        scoped: currentMessage()?.messageId ?? 'none',
        traceparent: ctx.headers.traceparent as string | undefined,
      });
    }
  }
  const app = await h.start(service, [Handler], options);
  const producer = new MessageProducer({ topic }, app.get(MessagingPublisher));
  return { seen, forwarded, producer };
}

describe('request context', () => {
  it("'auto' (the default): a message that carries a trace continues it, read or not", async () => {
    const { service, topic } = h.unique();
    const downstream: Array<string | undefined> = [];
    @Controller()
    class Forwarder {
      constructor(private readonly publisher: MessagingPublisher) {}

      @Consume(topic)
      async forward(): Promise<void> {
        await Promise.resolve();
        await new MessageProducer({ topic: `${topic}.next` }, this.publisher).publish({});
      }

      @Consume(`${topic}.next`)
      next(@Ctx() ctx: MessageContext): void {
        downstream.push(ctx.headers.traceparent as string | undefined);
      }
    }
    const app = await h.start(service, [Forwarder]);
    // Sent by a traced service upstream; nothing in this process reads currentMessage().
    const upstream = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await new MessageProducer({ topic }, app.get(MessagingPublisher)).publish(
      {},
      { headers: { traceparent: upstream } },
    );
    await waitFor(() => downstream.length === 1);
    expect(parseTraceparent(downstream[0])?.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  });

  it("'auto' (the default): no scope until something reads it, then the scope and the trace", async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn');
    try {
      const { seen, forwarded, producer } = await startApp({});
      await producer.publish({ forward: true }, { messageId: 'first' });
      await waitFor(() => forwarded.length === 1);
      // The first read ever comes from inside a handler that runs without the scope: it gets nothing
      // and says so, once; what that handler published starts a trace of its own.
      expect(seen).toEqual([{ scoped: 'none' }]);
      expect(forwarded[0].traceparent).toBeUndefined();
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn).toHaveBeenCalledWith(expect.stringContaining('requestContext: true'));

      // From then on every handler runs in the scope, and what it publishes continues its trace.
      await producer.publish({ forward: true }, { messageId: 'second' });
      await waitFor(() => forwarded.length === 2);
      expect(seen[1]).toEqual({ scoped: 'second' });
      expect(parseTraceparent(forwarded[1].traceparent)?.traceId).toBe(traceIdOf('second'));
      expect(forwarded[1].scoped).not.toBe('none');
      expect(warn).toHaveBeenCalledTimes(1);
    } finally {
      warn.mockRestore();
    }
  });

  it('false: never, even once something has read it', async () => {
    const { seen, forwarded, producer } = await startApp({ requestContext: false });
    await producer.publish({ forward: true }, { messageId: 'off' });
    await waitFor(() => forwarded.length === 1);
    expect(seen).toEqual([{ scoped: 'none' }]);
    expect(forwarded).toEqual([{ scoped: 'none', traceparent: undefined }]);
  });
});
