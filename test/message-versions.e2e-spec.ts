/**
 * Message versions on the memory backend, through Nest apps: producers of two versions on one topic,
 * one handler that takes both (upcast before its ValidationPipe), and what it dead-letters.
 */
import { Controller, UsePipes, ValidationPipe } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { IsIn, IsString } from 'class-validator';
import {
  BatchContext,
  Consume,
  DeadLetterService,
  InMemoryBackend,
  InMemoryBroker,
  MessageContext,
  MessageProducer,
  MessagingConfigError,
  MessagingPublisher,
  Producer,
} from '@app/messaging';
import { MessagingHeaders } from '@app/messaging/backend';
import { useContractHarness, waitFor } from '@app/messaging/testing';

const broker = new InMemoryBroker();

class OrderV1 {
  id!: string;
}

class OrderV2 {
  @IsString() id!: string;
  @IsIn(['EUR', 'USD']) currency!: string;
}

const toV2 = (v1: OrderV1): OrderV2 => ({ ...v1, currency: 'EUR' });

describe('message versions (memory backend)', () => {
  const h = useContractHarness(() => new InMemoryBackend({ broker }), {
    servicePrefix: 'versions',
  });

  /** The handler of version 2 of `topic`, and what it saw. */
  function ordersOf(topic: string) {
    const seen: Array<{ order: OrderV2; version: number }> = [];
    @Controller()
    class Orders {
      @Consume(topic, { version: 2, upcast: { 1: toV2 }, retry: false })
      @UsePipes(new ValidationPipe())
      take(@Payload() order: OrderV2, @Ctx() ctx: MessageContext): void {
        seen.push({ order, version: ctx.version });
      }
    }
    return { Orders, seen };
  }

  it('hands a handler of version 2 both versions as version 2, with the version each was sent as', async () => {
    const { service, topic } = h.unique();
    const { Orders, seen } = ordersOf(topic);
    @Controller()
    class Senders {
      constructor(
        @Producer(topic) readonly v1: MessageProducer<OrderV1>,
        @Producer({ topic, version: 2 }) readonly v2: MessageProducer<OrderV2>,
      ) {}
    }
    const app = await h.start(service, [Orders, Senders]);
    const senders = app.get(Senders);
    await senders.v1.publish({ id: 'a' });
    await waitFor(() => seen.length === 1);
    await senders.v2.publish({ id: 'b', currency: 'USD' });
    await waitFor(() => seen.length === 2);
    expect(seen).toEqual([
      { order: { id: 'a', currency: 'EUR' }, version: 1 },
      { order: { id: 'b', currency: 'USD' }, version: 2 },
    ]);
    // The ValidationPipe sees the upcast payload: a version 2 without a currency is refused.
    await senders.v2.publish({ id: 'c' } as OrderV2);
    const deadLetters = app.get(DeadLetterService);
    await waitFor(async () => (await deadLetters.list()).length === 1);
    expect((await deadLetters.list())[0]).toMatchObject({ reason: 'validation' });
  });

  it('dead-letters a newer version with what to do, and the handler that takes it handles its replay', async () => {
    const { service, topic } = h.unique();
    const { Orders, seen } = ordersOf(topic);
    const first = await h.start(service, [Orders]);
    await first.get(MessagingPublisher).publish({ topic }, { id: 'x', at: 3 }, { version: 3 });
    const deadLetters = first.get(DeadLetterService);
    await waitFor(async () => (await deadLetters.list()).length === 1);
    const [letter] = await deadLetters.list();
    expect(letter).toMatchObject({ reason: 'unrecoverable', errorClass: 'UnrecoverableError' });
    expect(letter.error).toBe(
      'the message is version 3, newer than the version 2 @Consume on Orders.take takes: ' +
        'deploy a handler that takes version 3 (@Consume(topic, { version: 3 })), then replay the dead letter',
    );
    expect(seen).toEqual([]);
    h.forget(first);
    await first.close();

    const handled: Array<{ payload: unknown; version: number }> = [];
    @Controller()
    class Orders3 {
      @Consume(topic, { version: 3, upcast: { 2: (v2: OrderV2) => ({ ...v2, at: 2 }) } })
      take(@Payload() payload: unknown, @Ctx() ctx: MessageContext): void {
        handled.push({ payload, version: ctx.version });
      }
    }
    const second = await h.start(service, [Orders3]);
    expect(await second.get(DeadLetterService).replay(letter.id)).toBe(true);
    await waitFor(() => handled.length === 1);
    expect(handled).toEqual([{ payload: { id: 'x', at: 3 }, version: 3 }]);
  });

  it('dead-letters as malformed a message whose version header is not a version', async () => {
    const { service, topic } = h.unique();
    const { Orders, seen } = ordersOf(topic);
    const app = await h.start(service, [Orders]);
    // The publisher never sends an x-messaging-* header it did not write: a foreign producer does.
    const foreign = new InMemoryBackend({ broker });
    await foreign.connect();
    try {
      await foreign.publish(
        {
          topic,
          body: Buffer.from(JSON.stringify({ id: 'm', currency: 'EUR' })),
          contentType: 'application/json',
          headers: { [MessagingHeaders.VERSION]: 'two' },
          messageId: `${topic}-malformed`,
          timestamp: Date.now(),
        },
        { mandatory: true },
      );
    } finally {
      await foreign.close();
    }
    const deadLetters = app.get(DeadLetterService);
    await waitFor(async () => (await deadLetters.list()).length === 1);
    const [letter] = await deadLetters.list();
    expect(letter).toMatchObject({ reason: 'malformed', errorClass: 'MalformedMessageError' });
    expect(letter.error).toMatch(/^header x-messaging-version is "two", not a version/);
    expect(seen).toEqual([]);
  });

  it('upcasts each item of a batch before its pipes; a handler without version ignores the header', async () => {
    const { service, topic } = h.unique();
    const batches: Array<{ payloads: unknown[]; versions: number[] }> = [];
    const plain: Array<{ payload: unknown; version: number }> = [];
    @Controller()
    class Batches {
      @Consume(topic, {
        version: 2,
        upcast: { 1: toV2 },
        batch: { size: 2, maxWaitMs: 5_000, itemType: OrderV2, itemPipes: [new ValidationPipe()] },
      })
      take(@Payload() payloads: OrderV2[], @Ctx() batch: BatchContext): void {
        batches.push({ payloads, versions: batch.items.map((item) => item.version) });
      }

      @Consume(topic, { name: 'plain' })
      any(@Payload() payload: unknown, @Ctx() ctx: MessageContext): void {
        plain.push({ payload, version: ctx.version });
      }
    }
    const app = await h.start(service, [Batches]);
    const publisher = app.get(MessagingPublisher);
    await publisher.publish({ topic }, { id: 'one' });
    await publisher.publish({ topic, version: 2 }, { id: 'two', currency: 'USD' });
    await waitFor(() => batches.length === 1 && plain.length === 2);
    const byId = (a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id);
    expect((batches[0].payloads as OrderV2[]).sort(byId)).toEqual([
      { id: 'one', currency: 'EUR' },
      { id: 'two', currency: 'USD' },
    ]);
    expect(batches[0].versions.sort()).toEqual([1, 2]);
    expect(plain.sort((a, b) => a.version - b.version)).toEqual([
      { payload: { id: 'one' }, version: 1 },
      { payload: { id: 'two', currency: 'USD' }, version: 2 },
    ]);
  });

  it('refuses where it is written an upcaster no chain reaches, a bad key or a bad version', () => {
    const define = (options: object) => () => {
      class Handler {
        @Consume('order.created', options)
        take(): void {}
      }
      return Handler;
    };
    expect(define({ version: 3, upcast: { 1: toV2 } })).toThrow(MessagingConfigError);
    expect(define({ version: 3, upcast: { 1: toV2 } })).toThrow(
      '@Consume on Handler.take: upcast has no 2, so a message of version 2 or below never reaches version 3: ' +
        'add upcast[2] (turns version 2 into 3), or drop the upcasters below it',
    );
    expect(define({ version: 2, upcast: { 2: toV2 } })).toThrow(
      /upcast has key '2', not a version below 2: upcast\[n\] turns version n into n \+ 1/,
    );
    expect(define({ upcast: { 1: toV2 } })).toThrow(/upcast needs version/);
    expect(() => Producer({ topic: 'order.created', version: 0 })).toThrow(
      '@Producer: version must be a whole number from 1 to 1000000, got 0',
    );
  });
});
