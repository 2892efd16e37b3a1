import { Controller } from '@nestjs/common';
import {
  Consume,
  currentMessage,
  InMemoryBackend,
  MessageProducer,
  MessagingPublisher,
} from '@app/messaging';
import { useContractHarness, waitFor } from '@app/messaging/testing';

/**
 * `requestContext: true`: handlers run in the scope from the very first message, before anything
 * in the process has read it (Jest gives this file a module registry of its own, so nothing has).
 */
describe('request context: true', () => {
  const h = useContractHarness(() => new InMemoryBackend(), { servicePrefix: 'rctx-on' });

  it('gives the first handler of the process currentMessage(), after an await too', async () => {
    const { service, topic } = h.unique();
    const seen: string[] = [];
    @Controller()
    class Handler {
      @Consume(topic)
      async handle(): Promise<void> {
        await Promise.resolve();
        seen.push(currentMessage()?.messageId ?? 'none');
      }
    }
    const app = await h.start(service, [Handler], { requestContext: true });
    await new MessageProducer({ topic }, app.get(MessagingPublisher)).publish(
      {},
      { messageId: 'first-of-all' },
    );
    await waitFor(() => seen.length === 1);
    expect(seen).toEqual(['first-of-all']);
  });
});
