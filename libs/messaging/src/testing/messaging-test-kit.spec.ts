import { MessagingServer } from '../server/messaging.server';
import { Controller, Injectable, Module } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { MessageContext } from '../context/message-context';
import { Consume } from '../decorators/consume.decorator';
import { Producer } from '../decorators/producer.decorator';
import { RemoteHandlerError, UnrecoverableError } from '../errors/messaging.errors';
import { MessagingModule } from '../module/messaging.module';
import { MessageProducer } from '../producer/message-producer';
import { MessagingTestKit, SettleTimeoutError } from './messaging-test-kit';
import { TestClock } from './test-clock';
import { gate } from './wait-for';

/** What the handlers under test did, in order. */
@Injectable()
class Journal {
  readonly entries: string[] = [];
}

const SLOW_RETRY = { maxAttempts: 3, backoff: { initialDelayMs: 10_000, jitter: 0 } };

@Controller()
class OrdersHandler {
  constructor(
    private readonly journal: Journal,
    @Producer('order.charged') private readonly charged: MessageProducer<{ orderId: string }>,
    @Producer('order.shipped') private readonly shipped: MessageProducer<{ orderId: string }>,
  ) {}

  @Consume('order.placed')
  async onPlaced(@Payload() order: { orderId: string }): Promise<void> {
    this.journal.entries.push(`placed ${order.orderId}`);
    await this.charged.publish({ orderId: order.orderId }, { headers: { tenant: 'acme' } });
  }

  @Consume('order.charged')
  async onCharged(@Payload() order: { orderId: string }): Promise<void> {
    this.journal.entries.push(`charged ${order.orderId}`);
    await this.shipped.publish({ orderId: order.orderId });
  }
}

@Controller()
class ShippingHandler {
  constructor(private readonly journal: Journal) {}

  @Consume('order.shipped')
  onShipped(@Payload() order: { orderId: string }): void {
    this.journal.entries.push(`shipped ${order.orderId}`);
  }

  @Consume('order.broken', { retry: SLOW_RETRY })
  onBroken(@Ctx() ctx: MessageContext): void {
    this.journal.entries.push(`broken attempt ${ctx.attempt}`);
    throw new Error(`gateway error (attempt ${ctx.attempt})`);
  }

  @Consume('order.flaky', { retry: { maxAttempts: 3, backoff: { initialDelayMs: 20, jitter: 0 } } })
  onFlaky(@Ctx() ctx: MessageContext): void {
    this.journal.entries.push(`flaky attempt ${ctx.attempt}`);
    if (ctx.attempt < 3) throw new Error('transient');
  }

  @Consume('order.refused')
  onRefused(): void {
    throw new UnrecoverableError('refused');
  }
}

/** Prices carts by asking `cart.total`, which another service answers. */
@Injectable()
class Checkout {
  constructor(
    @Producer('cart.total')
    private readonly totals: MessageProducer<{ cartId: string }, { total: number }>,
  ) {}

  async total(cartId: string): Promise<number> {
    return (await this.totals.request({ cartId }, { timeoutMs: 1000 })).total;
  }
}

const SERVICE = 'kit-spec';

function createKit(options: Parameters<typeof MessagingTestKit.create>[1] = {}) {
  return MessagingTestKit.create(
    {
      imports: [MessagingModule.forRoot({ service: SERVICE })],
      controllers: [OrdersHandler, ShippingHandler],
      providers: [Journal, Checkout],
    },
    options,
  );
}

describe('MessagingTestKit', () => {
  let kit: MessagingTestKit | undefined;
  const journal = () => (kit as MessagingTestKit).get(Journal).entries;

  afterEach(async () => {
    await kit?.close();
    kit = undefined;
  });

  it('runs the handler of a published message by the time settled() resolves', async () => {
    kit = await createKit();
    await kit.publish('order.shipped', { orderId: 'o-1' });
    await kit.settled();
    expect(journal()).toEqual(['shipped o-1']);
  });

  it("settles with a paused handler's messages held, and runs them after resume()", async () => {
    kit = await createKit();
    const server = kit.get(MessagingServer);
    const shipping = server.handlers.find((h) => h.queue.endsWith('order.shipped'))!.handler;
    server.pause(shipping);
    await kit.publish('order.shipped', { orderId: 'o-p1' });
    await kit.publish('order.shipped', { orderId: 'o-p2' });
    await kit.settled(); // the held messages wait for the test, not for the broker
    expect(journal()).toEqual([]);
    expect(server.heldDeliveries).toBe(2);
    server.resume(shipping);
    await kit.settled();
    expect(journal().sort()).toEqual(['shipped o-p1', 'shipped o-p2']);
  });

  it('settles a chain of messages published by handlers (A -> B -> C)', async () => {
    kit = await createKit();
    await kit.publish('order.placed', { orderId: 'o-2' });
    await kit.settled();
    expect(journal()).toEqual(['placed o-2', 'charged o-2', 'shipped o-2']);
  });

  it('records every published message, decoded, with its headers', async () => {
    kit = await createKit();
    await kit.publish('order.placed', { orderId: 'o-3' }, { correlationId: 'corr-3' });
    await kit.settled();
    expect(kit.published.map((m) => m.topic)).toEqual([
      'order.placed',
      'order.charged',
      'order.shipped',
    ]);
    const [charged] = kit.publishedTo('order.*');
    expect(charged).toMatchObject({
      topic: 'order.placed',
      payload: { orderId: 'o-3' },
      correlationId: 'corr-3',
      isRequest: false,
    });
    expect(kit.publishedTo('order.charged')[0].headers).toMatchObject({ tenant: 'acme' });
    kit.clearPublished();
    expect(kit.published).toEqual([]);
  });

  it('does not record a publish that no queue received', async () => {
    kit = await createKit();
    await expect(kit.publish('nobody.listens', { n: 1 })).rejects.toThrow(/No queue is bound/);
    expect(kit.published).toEqual([]);
  });

  it('runs a 10 s backoff to the dead-letter list on a manual clock, in no real time', async () => {
    kit = await createKit({ clock: 'manual' });
    const started = performance.now();
    await kit.publish('order.broken', { orderId: 'o-4' });
    await kit.settled();
    expect(journal()).toEqual(['broken attempt 1']);
    expect(kit.clock.pendingDelays).toBe(1);

    await kit.clock.advance(9_999);
    expect(journal()).toEqual(['broken attempt 1']);
    await kit.clock.advance(1);
    expect(journal()).toEqual(['broken attempt 1', 'broken attempt 2']);

    await kit.clock.runAllDelays();
    expect(journal()).toEqual(['broken attempt 1', 'broken attempt 2', 'broken attempt 3']);
    expect(kit.clock.now).toBe(30_000); // 10 s then 20 s
    expect(kit.clock.pendingDelays).toBe(0);
    const [letter] = await kit.deadLetters();
    expect(letter).toMatchObject({
      topic: 'order.broken',
      reason: 'max-attempts',
      attempts: 3,
      error: 'gateway error (attempt 3)',
      payload: { orderId: 'o-4' },
    });
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('runs every retry due within one advance(), a retry of a retry included', async () => {
    kit = await createKit({ clock: 'manual' });
    await kit.publish('order.broken', { orderId: 'o-5' });
    await kit.clock.advance(30_000);
    expect(journal()).toHaveLength(3);
    expect(await kit.deadLetters()).toHaveLength(1);
  });

  it('holds a delayed publish until the manual clock reaches it', async () => {
    kit = await createKit({ clock: 'manual' });
    await kit.publish('order.shipped', { orderId: 'o-6' }, { delayMs: 60_000 });
    await kit.settled();
    expect(journal()).toEqual([]);
    expect(kit.published[0]).toMatchObject({ topic: 'order.shipped', delayMs: 60_000 });
    await kit.clock.advance(60_000);
    expect(journal()).toEqual(['shipped o-6']);
  });

  it('with real time, settled() waits for retries as they happen', async () => {
    kit = await createKit();
    await kit.publish('order.flaky', { orderId: 'o-7' });
    await kit.settled();
    expect(journal()).toEqual(['flaky attempt 1', 'flaky attempt 2', 'flaky attempt 3']);
    await expect(kit.clock.advance(10)).rejects.toThrow(
      /create the kit with \{ clock: 'manual' \}/,
    );
  });

  it('lists dead letters of a message that failed for good', async () => {
    kit = await createKit();
    await kit.publish('order.refused', { orderId: 'o-8' });
    await kit.settled();
    expect(await kit.deadLetters()).toEqual([
      expect.objectContaining({
        reason: 'unrecoverable',
        attempts: 1,
        payload: { orderId: 'o-8' },
      }),
    ]);
    expect(await kit.deadLetters('another-service')).toEqual([]);
  });

  it('answers a MessageProducer.request with a stub, and passes a stub error to the caller', async () => {
    kit = await createKit();
    const asked: unknown[] = [];
    kit.stubRequest<{ cartId: string }, { total: number }>('cart.total', ({ cartId }, message) => {
      asked.push([cartId, message.isRequest]);
      return { total: cartId.length * 10 };
    });
    expect(await kit.get(Checkout).total('abc')).toBe(30);
    expect(asked).toEqual([['abc', true]]);
    expect(kit.publishedTo('cart.total')).toEqual([
      expect.objectContaining({ payload: { cartId: 'abc' }, isRequest: true }),
    ]);

    kit.stubRequest('cart.total', () => {
      throw Object.assign(new Error('pricing is down'), { code: 'PRICING_DOWN', status: 503 });
    });
    await expect(kit.get(Checkout).total('abc')).rejects.toEqual(
      expect.objectContaining({
        constructor: RemoteHandlerError,
        message: 'pricing is down',
        remoteCode: 'PRICING_DOWN',
        status: 503,
      }),
    );
    await kit.settled();
  });

  it('makes a topic of another service routable with stubConsumer()', async () => {
    kit = await createKit();
    const seen: unknown[] = [];
    kit.stubConsumer('invoice.#', (payload) => void seen.push(payload));
    await kit.publish('invoice.created', { id: 1 });
    await kit.settled();
    expect(seen).toEqual([{ id: 1 }]);
  });

  it('rejects settled() with what is still running when a handler never finishes', async () => {
    const stuck = gate();
    @Controller()
    class StuckHandler {
      @Consume('order.stuck')
      async onStuck(): Promise<void> {
        await stuck.promise;
      }
    }
    kit = await MessagingTestKit.create({
      imports: [MessagingModule.forRoot({ service: SERVICE })],
      controllers: [StuckHandler],
    });
    await kit.publish('order.stuck', {});
    const error = await kit.settled({ timeoutMs: 100 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SettleTimeoutError);
    expect((error as Error).message).toMatch(
      /timed out after 100 ms: 1 handler\(s\) still running, 0 delay\(s\) pending; busy queues: 'kit-spec.order.stuck' \(1 in flight, 0 ready\)/,
    );
    stuck.open();
    await kit.settled();
  });

  it('gives its backend to a module that asks for one', async () => {
    @Module({})
    class ShippingModule {
      static register(options: { backend: unknown }) {
        if (!options.backend) throw new Error('a backend is required');
        return {
          module: ShippingModule,
          imports: [
            MessagingModule.forRoot({ service: 'shipping', backend: options.backend as never }),
          ],
          controllers: [ShippingHandler],
          providers: [Journal],
        };
      }
    }
    kit = await MessagingTestKit.create(({ backend }) => ({
      imports: [ShippingModule.register({ backend })],
    }));
    expect(kit.service).toBe('shipping');
    await kit.publish('order.shipped', { orderId: 'o-9' });
    await kit.settled();
    expect(journal()).toEqual(['shipped o-9']);
  });

  it('refuses a misspelt option with what it probably meant', async () => {
    await expect(
      MessagingTestKit.create({ providers: [Journal] }, { clocks: 'manual' } as never),
    ).rejects.toThrow(/clocks.*did you mean 'clock'/);
  });

  it('says what is missing when the module has no MessagingModule', async () => {
    await expect(MessagingTestKit.create({ providers: [Journal] })).rejects.toThrow(
      /imports no MessagingModule; add MessagingModule.forRoot/,
    );
  });
});

describe('TestClock', () => {
  it('runs delays in time order, same-time ones in scheduling order, only when moved', () => {
    const clock = new TestClock();
    const ran: string[] = [];
    clock.schedule(300, () => ran.push('c'));
    clock.schedule(100, () => ran.push('a'));
    clock.schedule(100, () => ran.push('b'));
    expect(ran).toEqual([]);
    clock.advance(100);
    expect(ran).toEqual(['a', 'b']);
    expect(clock).toMatchObject({ now: 100, pending: 1, nextAt: 300 });
    clock.advance(1_000);
    expect(ran).toEqual(['a', 'b', 'c']);
    expect(clock.now).toBe(1_100);
    expect(() => clock.advance(-1)).toThrow(RangeError);
  });

  it('runs a delay scheduled by a task when it falls within the same advance()', () => {
    const clock = new TestClock();
    const ran: number[] = [];
    clock.schedule(10, () => {
      ran.push(clock.now);
      clock.schedule(10, () => ran.push(clock.now));
    });
    clock.advance(25);
    expect(ran).toEqual([10, 20]);
  });
});
