import 'reflect-metadata';
import { Controller, Injectable, type INestApplicationContext, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, Payload } from '@nestjs/microservices';
import { IsInt, IsString, Min } from 'class-validator';
import { InMemoryBackend, InMemoryBroker } from '../backends/memory';
import type { MessageContext } from '../context/message-context';
import { Consume } from '../decorators/consume.decorator';
import { Producer } from '../decorators/producer.decorator';
import { MessagingConfigError } from '../errors/messaging.errors';
import { MessagingModule } from '../module/messaging.module';
import type { MessageProducer } from '../producer/message-producer';
import { asyncApiDocument } from './asyncapi-document';

class ItemAdded {
  @IsString() sku!: string;
  @IsInt() @Min(1) quantity!: number;
}

class PriceRequest {
  @IsString() sku!: string;
}

class Price {
  @IsInt() cents!: number;
}

@Controller()
class CartController {
  @Consume('cart.item-added', { retry: { maxAttempts: 2 }, idempotent: true })
  async onItemAdded(@Payload() _item: ItemAdded, @Ctx() _ctx: MessageContext): Promise<void> {}

  @Consume({ queue: 'greetings', deadLetter: false, retry: false })
  async greet(@Payload() _text: string): Promise<void> {}

  /** Request/reply: a synchronous handler that returns a class. */
  @Consume('price.get')
  price(@Payload() _request: PriceRequest): Price {
    return { cents: 100 };
  }

  @Consume('cart.sku')
  async onSku(@Payload('sku') _sku: string): Promise<void> {}
}

@Injectable()
class CartService {
  @Producer('cart.checked-out') readonly checkedOut!: MessageProducer<{ cartId: string }>;

  constructor(
    @Producer('cart.item-added') readonly itemAdded: MessageProducer<ItemAdded>,
    @Producer({ topic: 'cart.audit', allowUnroutable: true }) readonly audit: MessageProducer,
  ) {}
}

/** Not part of the app: its producer is provided (for every app) but never sent through here. */
@Injectable()
export class Elsewhere {
  constructor(@Producer('elsewhere.only') readonly elsewhere: MessageProducer) {}
}

/** `@Consume` on a provider: Nest routes nothing to it, so it is no operation. */
@Injectable()
class NotAController {
  @Consume('never.routed')
  async never(): Promise<void> {}
}

describe('asyncApiDocument', () => {
  const apps: INestApplicationContext[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });

  async function cartApp(): Promise<INestApplicationContext> {
    @Module({
      imports: [
        MessagingModule.forRoot({
          service: 'cart',
          backend: new InMemoryBackend({ broker: new InMemoryBroker() }),
          retry: { maxAttempts: 5, backoff: { initialDelayMs: 50 } },
        }),
      ],
      controllers: [CartController],
      providers: [CartService, NotAController],
    })
    class CartModule {}
    const app = await NestFactory.createApplicationContext(CartModule, { logger: false });
    apps.push(app);
    return app;
  }

  it('reads the routes, producers and payload classes of an app', async () => {
    const document = asyncApiDocument(await cartApp(), { title: 'Cart', version: '1.0.0' });
    const operations = document.operations as Record<string, Record<string, any>>;
    expect(Object.keys(operations)).toEqual([
      'cart.greet',
      'cart.onItemAdded',
      'cart.onSku',
      'cart.price',
      'cart.sendCartAudit',
      'cart.sendCartCheckedOut',
      'cart.sendCartItemAdded',
    ]);
    // Options resolved as the server resolves them: the handler's over the module's.
    expect(operations['cart.onItemAdded']['x-messaging']).toEqual({
      service: 'cart',
      handler: 'CartController.onItemAdded',
      queue: 'cart.cart.item-added',
      concurrency: 10,
      idempotent: true,
      retry: {
        maxAttempts: 2,
        backoff: { initialDelayMs: 50, multiplier: 2, maxDelayMs: 60_000, jitter: 0.2 },
      },
      deadLetterQueue: 'cart.dead-letter',
    });
    expect(operations['cart.greet']['x-messaging']).toMatchObject({
      queue: 'greetings',
      retry: false,
      deadLetterQueue: null,
    });
    expect(operations['cart.price'].reply).toEqual({
      address: { location: '$message.header#/replyTo', description: expect.any(String) },
      channel: { $ref: '#/channels/priceGetReply' },
      messages: [{ $ref: '#/channels/priceGetReply/messages/priceGetReply' }],
    });
    expect(operations['cart.sendCartAudit']['x-messaging']).toEqual({
      service: 'cart',
      producers: ['CartService'],
      allowUnroutable: true,
    });
    expect(Object.keys(document.channels as object)).not.toContain('elsewhereOnly');
    expect(Object.keys(document.channels as object)).not.toContain('neverRouted');

    const { messages, schemas } = document.components as Record<string, Record<string, any>>;
    expect(messages.cartItemAdded.payload).toEqual({ $ref: '#/components/schemas/ItemAdded' });
    expect(messages.greetingsQueue).toMatchObject({
      contentType: 'text/plain',
      payload: { type: 'string' },
    });
    expect(messages.priceGetReply.payload).toEqual({ $ref: '#/components/schemas/Price' });
    // @Payload('sku') takes one field: the message's type is not known.
    expect(messages.cartSku.payload).toBeUndefined();
    expect(Object.keys(schemas)).toEqual(['ItemAdded', 'Price', 'PriceRequest']);
    expect(schemas.ItemAdded).toEqual({
      type: 'object',
      properties: { sku: { type: 'string' }, quantity: { type: 'integer', minimum: 1 } },
      required: ['sku', 'quantity'],
    });
  });

  it('describes several apps as one system, the same whatever their order', async () => {
    class CheckedOut {
      @IsString() cartId!: string;
    }
    @Controller()
    class BillingController {
      @Consume('cart.checked-out')
      async bill(@Payload() _event: CheckedOut): Promise<void> {}
    }
    @Module({
      imports: [
        MessagingModule.forRoot({
          service: 'billing',
          backend: new InMemoryBackend({ broker: new InMemoryBroker() }),
        }),
      ],
      controllers: [BillingController],
    })
    class BillingModule {}
    const billing = await NestFactory.createApplicationContext(BillingModule, { logger: false });
    apps.push(billing);
    const cart = await cartApp();

    const document = asyncApiDocument([cart, billing], { title: 'Shop', version: '1' });
    const channels = document.channels as Record<string, Record<string, any>>;
    expect(channels.cartCheckedOut.description).toBe(
      'Topic `cart.checked-out`: sent by cart; received by billing.',
    );
    // The producer's MessageProducer<T> is erased: its messages are those billing validates.
    const operations = document.operations as Record<string, Record<string, any>>;
    expect(operations['cart.sendCartCheckedOut'].messages).toEqual([
      { $ref: '#/channels/cartCheckedOut/messages/cartCheckedOut' },
    ]);
    expect(operations['billing.bill'].tags).toEqual([{ name: 'billing' }]);
    const reversed = asyncApiDocument([billing, cart], { title: 'Shop', version: '1' });
    expect(JSON.stringify(reversed)).toBe(JSON.stringify(document));
  });

  it('refuses an app without MessagingModule, saying so', async () => {
    @Module({})
    class Bare {}
    const app = await NestFactory.createApplicationContext(Bare, { logger: false });
    apps.push(app);
    expect(() => asyncApiDocument(app, { title: 'x', version: '1' })).toThrow(MessagingConfigError);
    expect(() => asyncApiDocument(app, { title: 'x', version: '1' })).toThrow(/MessagingModule/);
  });

  it('shows the versions a handler takes and a producer sends', async () => {
    @Controller()
    class OrdersController {
      @Consume('order.placed', { version: 2, upcast: { 1: (v1: object) => v1 } })
      async place(@Payload() _order: ItemAdded): Promise<void> {}
    }
    @Injectable()
    class OrdersService {
      constructor(
        @Producer({ topic: 'order.placed', version: 2 }) readonly placed: MessageProducer,
      ) {}
    }
    @Module({
      imports: [
        MessagingModule.forRoot({
          service: 'orders',
          backend: new InMemoryBackend({ broker: new InMemoryBroker() }),
        }),
      ],
      controllers: [OrdersController],
      providers: [OrdersService],
    })
    class OrdersModule {}
    const app = await NestFactory.createApplicationContext(OrdersModule, { logger: false });
    apps.push(app);
    const document = asyncApiDocument(app, { title: 'Orders', version: '1' }) as Record<
      string,
      any
    >;
    expect(document.operations['orders.place']['x-messaging']).toMatchObject({
      version: 2,
      upcastFrom: [1],
    });
    expect(document.operations['orders.sendOrderPlaced']).toMatchObject({
      messages: [{ $ref: '#/channels/orderPlaced/messages/orderPlaced.v2' }],
      'x-messaging': { versions: [2] },
    });
    expect(Object.keys(document.components.messages)).toEqual(['orderPlaced.v1', 'orderPlaced.v2']);
    expect(document.components.messages['orderPlaced.v2']).toMatchObject({
      title: 'order.placed v2',
      payload: { $ref: '#/components/schemas/ItemAdded' },
    });
  });

  it('shows a batch handler as such: x-batch, and one item as its message', async () => {
    @Controller()
    class StockController {
      @Consume('stock.counted', { batch: { size: 100, maxWaitMs: 20, itemType: ItemAdded } })
      async count(@Payload() _items: ItemAdded[]): Promise<void> {}
    }
    @Module({
      imports: [
        MessagingModule.forRoot({
          service: 'stock',
          backend: new InMemoryBackend({ broker: new InMemoryBroker() }),
        }),
      ],
      controllers: [StockController],
    })
    class StockModule {}
    const app = await NestFactory.createApplicationContext(StockModule, { logger: false });
    apps.push(app);
    const document = asyncApiDocument(app, { title: 'Stock', version: '1' }) as Record<string, any>;
    const operation = document.operations['stock.count'] as Record<string, any>;
    expect(operation['x-batch']).toEqual({ size: 100, maxWaitMs: 20 });
    expect(operation.description).toContain('batches of up to 100 messages');
    const schema = JSON.stringify(document.components.schemas);
    expect(schema).toContain('quantity');
  });
});
