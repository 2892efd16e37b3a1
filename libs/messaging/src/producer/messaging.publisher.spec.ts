import { MessagingHeaders } from '../backend/message-headers';
import type {
  BackendPublishOptions,
  BackendRequestOptions,
  BrokerBackend,
  OutgoingMessage,
} from '../backend/broker-backend.interface';
import { MessageCodec } from '../codec/message-codec';
import { InMemoryBackend } from '../backends/memory';
import type { MessagingTracer } from '../observability/messaging-tracer';
import { resolveMessagingOptions } from '../options/messaging-options';
import { MessagingPublisher } from './messaging.publisher';

describe('MessagingPublisher.request()', () => {
  /** A publisher over a backend whose every request gets `reply`, with a tracer counting span ends. */
  function publisherReplying(reply: { body: string; headers?: Record<string, unknown> }) {
    const options = resolveMessagingOptions({ service: 'spans', backend: new InMemoryBackend() });
    const backend: Pick<BrokerBackend, 'name' | 'request'> = {
      name: 'scripted',
      request: () =>
        Promise.resolve({
          body: Buffer.from(reply.body),
          headers: reply.headers ?? {},
          contentType: 'application/json',
        }),
    };
    const ends: unknown[] = [];
    const tracer = {
      publish: () => ({
        headers: {},
        send: (b: BrokerBackend, m: OutgoingMessage, o: BackendPublishOptions) => b.publish(m, o),
        request: (b: BrokerBackend, m: OutgoingMessage, o: BackendRequestOptions) =>
          b.request(m, o),
        end: (error?: unknown) => ends.push(error ?? 'ok'),
      }),
    } as unknown as MessagingTracer;
    const publisher = new MessagingPublisher(
      options,
      backend as BrokerBackend,
      new MessageCodec(options.codec),
      undefined,
      tracer,
    );
    return { publisher, ends };
  }

  it('ends its span once: with the reply, the handler error, or a reply it cannot decode', async () => {
    const ok = publisherReplying({ body: '7' });
    await expect(ok.publisher.request({ topic: 'cart.total' }, {})).resolves.toBe(7);
    expect(ok.ends).toEqual(['ok']);

    const failed = publisherReplying({
      body: JSON.stringify({ message: 'no such cart', errorClass: 'NotFound' }),
      headers: { [MessagingHeaders.REPLY_ERROR]: 'NotFound' },
    });
    await expect(failed.publisher.request({ topic: 'cart.total' }, {})).rejects.toThrow(
      'no such cart',
    );
    expect(failed.ends).toEqual([expect.objectContaining({ message: 'no such cart' })]);

    const malformed = publisherReplying({ body: '{"not json' });
    await expect(malformed.publisher.request({ topic: 'cart.total' }, {})).rejects.toThrow(
      /not valid JSON/,
    );
    expect(malformed.ends).toEqual([expect.objectContaining({ message: expect.any(String) })]);
  });
});
