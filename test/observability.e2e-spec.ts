import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  Consume,
  currentMessage,
  DeadLetterService,
  InMemoryBackend,
  InMemoryBroker,
  MessageContext,
  MessageProducer,
  type MessagingMetrics,
  MessagingPublisher,
  PrometheusMessagingMetrics,
} from '@app/messaging';
import { FAST_RETRY, useContractHarness, waitFor } from '@app/messaging/testing';
import { describeTracing } from './support/observability-scenarios';
import { RecordedMetrics } from './support/recorded-metrics';

const broker = new InMemoryBroker();
describeTracing('memory', () => new InMemoryBackend({ broker }));

describe('request context (memory backend)', () => {
  const h = useContractHarness(() => new InMemoryBackend({ broker }), { servicePrefix: 'scope' });

  it('gives handlers currentMessage(), or nothing with requestContext: false', async () => {
    const seen: unknown[] = [];
    @Controller()
    class Handler {
      @Consume('scope.#')
      async handle() {
        await Promise.resolve(); // and after an await
        seen.push(currentMessage()?.messageId ?? 'none');
      }
    }
    const on = h.unique();
    const withScope = await h.start(on.service, [Handler]);
    await new MessageProducer({ topic: 'scope.on' }, withScope.get(MessagingPublisher)).publish(
      {},
      { messageId: 'm-on' },
    );
    await waitFor(() => seen.length === 1);
    await withScope.close();
    h.forget(withScope);
    const off = h.unique();
    const without = await h.start(off.service, [Handler], { requestContext: false });
    await new MessageProducer({ topic: 'scope.off' }, without.get(MessagingPublisher)).publish({});
    await waitFor(() => seen.length === 2);
    expect(seen).toEqual(['m-on', 'none']);
  });
});

describe('metrics (memory backend)', () => {
  const h = useContractHarness(() => new InMemoryBackend({ broker }), { servicePrefix: 'metrics' });

  it('counts publishes, outcomes, retries, dead letters and handler time', async () => {
    const { service, topic } = h.unique();
    const metrics = new RecordedMetrics();
    @Controller()
    class Handler {
      @Consume(topic)
      handle(@Ctx() ctx: MessageContext) {
        const { kind } = ctx.getDelivery().headers as { kind?: string };
        if (kind === 'flaky' && ctx.attempt === 1) throw new Error('transient');
        if (kind === 'broken') throw new Error('always');
      }
    }
    const app = await h.start(service, [Handler], { retry: FAST_RETRY, metrics });
    const producer = new MessageProducer({ topic }, app.get(MessagingPublisher));
    await producer.publish({}, { headers: { kind: 'ok' } });
    await producer.publish({}, { headers: { kind: 'flaky' } });
    await producer.publish({}, { headers: { kind: 'broken' } });
    const handler = 'Handler.handle';
    await waitFor(() => metrics.get('deadLettered', { handler, reason: 'max-attempts' }) === 1, {
      message: 'the broken message dead-lettered after its attempts',
    });
    await waitFor(() => metrics.get('inFlight', { handler }) === 0);
    expect(metrics.get('published', { topic })).toBe(3);
    expect(metrics.get('confirmed', { topic })).toBe(3);
    expect(metrics.get('consumed', { handler, topic, outcome: 'ack' })).toBe(2);
    expect(metrics.get('consumed', { handler, topic, outcome: 'retry' })).toBe(3); // flaky 1, broken 2
    expect(metrics.get('consumed', { handler, topic, outcome: 'dead-letter' })).toBe(1);
    expect(metrics.get('retried', { handler })).toBe(3);
    const durations = metrics.observations.filter((o) => o.metric === 'handlerDuration');
    expect(durations).toHaveLength(6);
    expect(durations.every((o) => o.value >= 0 && o.value < 5)).toBe(true);
  });

  it('counts a rejected publish by its error', async () => {
    const { service, topic } = h.unique();
    const metrics = new RecordedMetrics();
    const app = await h.start(service, [], { metrics });
    await expect(
      new MessageProducer({ topic }, app.get(MessagingPublisher)).publish({}),
    ).rejects.toThrow(/no queue|nobody|no service/i);
    expect(metrics.get('rejected', { topic, error: 'UnroutableError' })).toBe(1);
  });

  it('counts a failed request as error-reply: its caller got the error', async () => {
    const { service, topic } = h.unique();
    const metrics = new RecordedMetrics();
    @Controller()
    class Handler {
      @Consume(topic)
      handle() {
        throw new Error('no such order');
      }
    }
    const app = await h.start(service, [Handler], { metrics });
    await expect(
      new MessageProducer({ topic }, app.get(MessagingPublisher)).request({}),
    ).rejects.toThrow('no such order');
    await waitFor(
      () =>
        metrics.get('consumed', { handler: 'Handler.handle', topic, outcome: 'error-reply' }) === 1,
    );
    expect(
      metrics.get('consumed', { handler: 'Handler.handle', topic, outcome: 'dropped' }),
    ).toBeUndefined();
  });

  it('lets a sink that throws change nothing: handled once, acknowledged, the publish resolves', async () => {
    const { service, topic } = h.unique();
    const broken: MessagingMetrics = {
      increment: () => {
        throw new Error('statsd down');
      },
      observe: () => {
        throw new Error('statsd down');
      },
      set: () => {
        throw new Error('statsd down');
      },
    };
    const handled: number[] = [];
    @Controller()
    class Handler {
      @Consume(topic)
      handle(@Payload() body: { n: number }) {
        handled.push(body.n);
      }
    }
    const app = await h.start(service, [Handler], { metrics: broken });
    const producer = new MessageProducer({ topic }, app.get(MessagingPublisher));
    await producer.publish({ n: 1 });
    await producer.publish({ n: 2 });
    await waitFor(() => handled.length === 2);
    expect(handled).toEqual([1, 2]);
    expect(await app.get(DeadLetterService).list()).toEqual([]);
  });

  it('exports them to Prometheus text', async () => {
    const { service, topic } = h.unique();
    const metrics = new PrometheusMessagingMetrics();
    @Controller()
    class Handler {
      @Consume(topic)
      handle() {}
    }
    const app = await h.start(service, [Handler], { metrics });
    await new MessageProducer({ topic }, app.get(MessagingPublisher)).publish({});
    let text = '';
    await waitFor(async () =>
      (text = await metrics.registry.metrics()).includes(
        `messaging_consumed_total{handler="Handler.handle",topic="${topic}",outcome="ack"} 1`,
      ),
    );
    expect(text).toContain(`messaging_published_total{topic="${topic}"} 1`);
    expect(text).toContain('# TYPE messaging_handler_duration_seconds histogram');
    expect(metrics.registry.contentType).toMatch(/text\/plain/);
  });
});
