import { Controller } from '@nestjs/common';
import { Ctx } from '@nestjs/microservices';
import { AlwaysOffSampler, ParentBasedSampler } from '@opentelemetry/sdk-trace-base';
import {
  Consume,
  type CurrentMessage,
  currentMessage,
  InMemoryBackend,
  InMemoryBroker,
  MessageContext,
  MessageProducer,
  MessagingPublisher,
  parseTraceparent,
} from '@app/messaging';
import { useContractHarness, waitFor } from '@app/messaging/testing';
import { useOpenTelemetry } from './support/open-telemetry';

/** The SDK's sampler decides: a trace it drops travels unsampled, and nobody records its spans. */
describe('tracing with a sampler that drops every trace', () => {
  const otel = useOpenTelemetry(new ParentBasedSampler({ root: new AlwaysOffSampler() }));
  const broker = new InMemoryBroker();
  const h = useContractHarness(() => new InMemoryBackend({ broker }), { servicePrefix: 'sampled' });

  it('carries the unsampled flag, and records no span on either side', async () => {
    const { service, topic } = h.unique();
    const seen: { header: unknown; scope: CurrentMessage }[] = [];
    @Controller()
    class Handler {
      @Consume(topic)
      handle(@Ctx() ctx: MessageContext) {
        seen.push({ header: ctx.headers.traceparent, scope: currentMessage() as CurrentMessage });
      }
    }
    const app = await h.start(service, [Handler]);
    await new MessageProducer({ topic }, app.get(MessagingPublisher)).publish({});
    await waitFor(() => seen.length === 1);
    const sent = parseTraceparent(seen[0].header);
    expect(sent?.flags).toBe(0);
    expect(seen[0].scope).toMatchObject({ traceId: sent?.traceId, traceFlags: 0 });
    expect(otel.spans()).toEqual([]);
  });
});
