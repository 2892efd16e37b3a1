import type { ResolvedRetryPolicy } from '../retry/retry-policy';
import {
  buildAsyncApiDocument,
  type MessagingDescription,
  type ProducerDescription,
  type RouteDescription,
} from './asyncapi-builder';
import type { AsyncApiBroker } from './asyncapi-bindings';
import type { MessagePayload } from './payload-schema';

const RETRY: ResolvedRetryPolicy = {
  maxAttempts: 3,
  backoff: { initialDelayMs: 100, multiplier: 2, maxDelayMs: 1000, jitter: 0.2 },
};
const INFO = { title: 'Shop', version: '1.2.3' };

const json = (name: string): MessagePayload => ({
  name,
  contentType: 'application/json',
  schema: { $ref: `#/components/schemas/${name}` },
});
const TEXT: MessagePayload = {
  name: 'String',
  contentType: 'text/plain',
  schema: { type: 'string' },
};

/** A `@Consume` route of `service` on a topic (or `{ queue }`), resolved. */
function route(
  service: string,
  name: string,
  on: string | { queue: string },
  extra: Partial<RouteDescription> = {},
): RouteDescription {
  const external = typeof on !== 'string';
  return {
    name,
    spec: {
      service,
      queue: external ? on.queue : `${service}.${on}`,
      topics: external ? [] : [on],
      external,
      concurrency: 5,
    },
    retry: RETRY,
    deadLetter: true,
    idempotent: false,
    ...extra,
  };
}

function producer(
  service: string,
  owner: string,
  on: string | { queue: string },
  extra: Partial<ProducerDescription> = {},
): ProducerDescription {
  const target = typeof on === 'string' ? { topic: on } : on;
  return { service, owner, allowUnroutable: false, ...target, ...extra };
}

function build(routes: RouteDescription[], producers: ProducerDescription[] = []) {
  const system: MessagingDescription = { routes, producers, schemas: { A: {}, B: {} } };
  return buildAsyncApiDocument(INFO, system) as Record<string, any>;
}

describe('buildAsyncApiDocument', () => {
  it.each<[string, RouteDescription[], ProducerDescription[], Record<string, any>]>([
    [
      'a topic: a channel, a receive operation per handler, a send operation per service',
      [route('payments', 'OrderConsumer.onOrderCreated', 'order.created', { payload: json('A') })],
      [producer('orders', 'OrdersService', 'order.created')],
      {
        info: { tags: [{ name: 'orders' }, { name: 'payments' }] },
        channels: {
          orderCreated: {
            address: 'order.created',
            description: 'Topic `order.created`: sent by orders; received by payments.',
            messages: { orderCreated: { $ref: '#/components/messages/orderCreated' } },
            bindings: {
              amqp: { is: 'routingKey', exchange: { name: 'messaging', type: 'topic' } },
            },
          },
        },
        operations: {
          'payments.onOrderCreated': {
            action: 'receive',
            channel: { $ref: '#/channels/orderCreated' },
            messages: [{ $ref: '#/channels/orderCreated/messages/orderCreated' }],
            tags: [{ name: 'payments' }],
            'x-messaging': {
              handler: 'OrderConsumer.onOrderCreated',
              queue: 'payments.order.created',
              concurrency: 5,
              retry: RETRY,
              deadLetterQueue: 'payments.dead-letter',
            },
          },
          'orders.sendOrderCreated': {
            action: 'send',
            channel: { $ref: '#/channels/orderCreated' },
            // The producer's type is erased: it sends what the receivers take.
            messages: [{ $ref: '#/channels/orderCreated/messages/orderCreated' }],
            bindings: { amqp: { mandatory: true, deliveryMode: 2 } },
            'x-messaging': { producers: ['OrdersService'], allowUnroutable: false },
          },
        },
        components: {
          messages: {
            orderCreated: {
              name: 'orderCreated',
              title: 'order.created',
              contentType: 'application/json',
              payload: { $ref: '#/components/schemas/A' },
            },
          },
          schemas: { A: {}, B: {} },
        },
      },
    ],
    [
      'a named queue, consumed as it is, with a text payload',
      [route('greeter', 'HelloController.greet', { queue: 'hello' }, { payload: TEXT })],
      [producer('greeter', 'Greeter', { queue: 'hello' })],
      {
        channels: {
          helloQueue: {
            address: 'hello',
            bindings: { amqp: { is: 'queue', queue: { name: 'hello' } } },
          },
        },
        operations: {
          'greeter.greet': { summary: 'HelloController.greet handles queue hello' },
          'greeter.sendHelloQueue': { summary: 'greeter publishes to queue hello' },
        },
        components: {
          messages: { helloQueue: { contentType: 'text/plain', payload: { type: 'string' } } },
        },
      },
    ],
    [
      'a topic only produced: a message with no payload schema',
      [],
      [producer('orders', 'Audit', 'audit.#', { allowUnroutable: true })],
      {
        channels: {
          auditHash: { address: 'audit.#', description: 'Topic `audit.#`: sent by orders.' },
        },
        operations: {
          'orders.sendAuditHash': {
            bindings: { amqp: { mandatory: false } },
            'x-messaging': { allowUnroutable: true },
          },
        },
        components: {
          messages: { auditHash: { description: expect.stringContaining('not described') } },
        },
      },
    ],
    [
      'two payload types on one topic: a message each; the producer lists both',
      [
        route('a', 'A.onItem', 'item.*', { payload: json('A') }),
        route('b', 'B.onItem', 'item.*', { payload: json('B') }),
      ],
      [producer('c', 'C', 'item.*')],
      {
        channels: { itemStar: { messages: { 'itemStar.A': {}, 'itemStar.B': {} } } },
        operations: {
          'a.onItem': { messages: [{ $ref: '#/channels/itemStar/messages/itemStar.A' }] },
          'b.onItem': { messages: [{ $ref: '#/channels/itemStar/messages/itemStar.B' }] },
          'c.sendItemStar': {
            messages: [
              { $ref: '#/channels/itemStar/messages/itemStar.A' },
              { $ref: '#/channels/itemStar/messages/itemStar.B' },
            ],
          },
        },
      },
    ],
    [
      'a handler that returns a class: the reply, on a channel without an address',
      [route('quotes', 'Q.quote', 'quote.get', { payload: json('A'), reply: json('B') })],
      [],
      {
        channels: {
          quoteGet: { address: 'quote.get' },
          quoteGetReply: {
            address: null,
            messages: { quoteGetReply: { $ref: '#/components/messages/quoteGetReply' } },
          },
        },
        operations: {
          'quotes.quote': {
            description: expect.stringContaining('A request is never retried'),
            reply: {
              channel: { $ref: '#/channels/quoteGetReply' },
              messages: [{ $ref: '#/channels/quoteGetReply/messages/quoteGetReply' }],
            },
          },
        },
        components: {
          messages: { quoteGetReply: { title: 'Reply to quote.get', payload: json('B').schema } },
        },
      },
    ],
    [
      'no retries and no dead letters',
      [route('s', 'S.once', 'x.y', { retry: false, deadLetter: false, idempotent: true })],
      [],
      {
        operations: {
          's.once': {
            description: expect.stringMatching(
              /Idempotent.*A failure is not retried: the message is dropped \(no dead-letter queue\)\.$/,
            ),
            'x-messaging': { idempotent: true, retry: false, deadLetterQueue: null },
          },
        },
      },
    ],
    [
      'an ordered handler on a named connection, and a producer on it',
      [route('s', 'S.track', 'x.y', { ordered: true, connection: 'events' })],
      [producer('s', 'Tracker', 'x.y', { connection: 'events' })],
      {
        operations: {
          's.track': {
            description: expect.stringContaining('Ordered: the messages of one orderingKey'),
            'x-messaging': { ordered: true, orderedBy: 'orderingKey', connection: 'events' },
          },
          's.events.sendXY': { 'x-messaging': { connection: 'events' } },
        },
      },
    ],
    [
      'versions: a handler of version 2 that upcasts version 1, a producer of each version',
      [
        route('payments', 'P.onOrder', 'order.created', {
          payload: json('A'),
          version: 2,
          upcastFrom: [1],
        }),
      ],
      [
        producer('legacy', 'Old', 'order.created', { version: 1 }),
        producer('orders', 'New', 'order.created', { version: 2 }),
      ],
      {
        channels: {
          orderCreated: {
            messages: {
              'orderCreated.v1': { $ref: '#/components/messages/orderCreated.v1' },
              'orderCreated.v2': { $ref: '#/components/messages/orderCreated.v2' },
            },
          },
        },
        operations: {
          'payments.onOrder': {
            messages: [
              { $ref: '#/channels/orderCreated/messages/orderCreated.v2' },
              { $ref: '#/channels/orderCreated/messages/orderCreated.v1' },
            ],
            description: expect.stringContaining(
              'Takes version 2 of the message (header `x-messaging-version`, none = 1), and version 1 upcast to it;',
            ),
            'x-messaging': { version: 2, upcastFrom: [1] },
          },
          'legacy.sendOrderCreated': {
            messages: [{ $ref: '#/channels/orderCreated/messages/orderCreated.v1' }],
            'x-messaging': { versions: [1] },
          },
          'orders.sendOrderCreated': {
            messages: [{ $ref: '#/channels/orderCreated/messages/orderCreated.v2' }],
            'x-messaging': { versions: [2] },
          },
        },
        components: {
          messages: {
            'orderCreated.v1': {
              name: 'orderCreated.v1',
              title: 'order.created v1',
              description: expect.stringContaining('Version 1. Its payload is not described'),
              headers: {
                type: 'object',
                properties: { 'x-messaging-version': { type: 'integer', const: 1 } },
              },
            },
            'orderCreated.v2': {
              name: 'orderCreated.v2',
              title: 'order.created v2',
              payload: { $ref: '#/components/schemas/A' },
              headers: {
                properties: { 'x-messaging-version': { type: 'integer', const: 2 } },
                required: ['x-messaging-version'],
              },
            },
          },
        },
      },
    ],
    [
      'two handlers of a service with one method name: ids name the class',
      [
        route('s', 'A.handle', 'a.one'),
        route('s', 'B.handle', 'b.two'),
        route('t', 'C.handle', 'c'),
      ],
      [],
      { operations: { 's.A.handle': {}, 's.B.handle': {}, 't.handle': {} } },
    ],
  ])('%s', (_case, routes, producers, expected) => {
    expect(build(routes, producers)).toMatchObject(expected);
  });

  it('is an AsyncAPI 3.0 document with the info given', () => {
    const document = buildAsyncApiDocument(
      { ...INFO, description: 'All of it', exchange: 'shop' },
      { routes: [route('s', 'S.on', 'a.b')], producers: [], schemas: {} },
    ) as Record<string, any>;
    expect(document).toMatchObject({
      asyncapi: '3.0.0',
      info: { title: 'Shop', version: '1.2.3', description: 'All of it' },
      defaultContentType: 'application/json',
    });
    expect(document.channels.aB.bindings.amqp.exchange.name).toBe('shop');
  });

  it('describes request/reply on both sides: the reply address, and request() on the send operation', () => {
    const document = build(
      [route('quotes', 'Q.quote', 'quote.get', { payload: json('A'), reply: json('B') })],
      [producer('shop', 'Cart', 'quote.get')],
    );
    const reply = {
      address: { location: '$message.header#/replyTo', description: expect.any(String) },
      channel: { $ref: '#/channels/quoteGetReply' },
      messages: [{ $ref: '#/channels/quoteGetReply/messages/quoteGetReply' }],
    };
    expect(document.operations['quotes.quote'].reply).toEqual(reply);
    expect(document.operations['shop.sendQuoteGet']).toMatchObject({
      reply,
      description: expect.stringContaining('`request()` resolves with its reply'),
    });
  });

  it.each<[string, Record<string, any>, Record<string, any>]>([
    [
      'RabbitMQ: the exchange and vhost given, on the amqp bindings',
      { kind: 'amqp', exchange: 'shop', vhost: 'prod' },
      {
        channels: {
          aB: {
            bindings: { amqp: { is: 'routingKey', exchange: { name: 'shop', vhost: 'prod' } } },
          },
          helloQueue: {
            bindings: { amqp: { is: 'queue', queue: { name: 'hello', vhost: 'prod' } } },
          },
        },
        operations: { 's.on': { bindings: { amqp: { ack: true } } } },
      },
    ],
    [
      'Redis: the streams, in x-messaging (its bindings are reserved)',
      { kind: 'redis', prefix: 'shop' },
      {
        channels: {
          aB: { 'x-messaging': { broker: 'redis', stream: 'shop:t:a.b' } },
          helloQueue: { 'x-messaging': { broker: 'redis', stream: 'shop:q:hello' } },
        },
      },
    ],
    [
      'NATS: the stream and subjects, in x-messaging (its channel binding is reserved)',
      { kind: 'nats' },
      {
        channels: {
          aB: {
            'x-messaging': {
              broker: 'nats',
              stream: 'messaging-messages',
              subject: 'messaging.t.a.b',
            },
          },
          helloQueue: { 'x-messaging': { subject: 'messaging.q.hello' } },
        },
      },
    ],
  ])('writes the bindings of the broker: %s', (_case, broker, expected) => {
    const document = buildAsyncApiDocument(
      { ...INFO, broker: broker as AsyncApiBroker },
      {
        routes: [route('s', 'S.on', 'a.b'), route('s', 'S.hello', { queue: 'hello' })],
        producers: [producer('s', 'P', 'a.b')],
        schemas: {},
      },
    ) as Record<string, any>;
    expect(document).toMatchObject(expected);
    if (broker.kind !== 'amqp') {
      // No RabbitMQ binding anywhere in the document.
      expect(JSON.stringify(document)).not.toContain('"amqp"');
    }
  });

  it('gives the same document, in the same key order, whatever the order of its input', () => {
    const routes = [
      route('payments', 'P.onOrder', 'order.created', { payload: json('A') }),
      route('orders', 'O.onPaid', 'payment.done', { payload: json('B') }),
      route('orders', 'O.hello', { queue: 'hello' }),
    ];
    const producers = [
      producer('orders', 'OrdersService', 'order.created'),
      producer('payments', 'PaymentsService', 'payment.done'),
      producer('orders', 'Other', 'order.created'),
    ];
    const one = JSON.stringify(build(routes, producers));
    const other = JSON.stringify(build([...routes].reverse(), [...producers].reverse()));
    expect(other).toBe(one);
    const document = JSON.parse(one) as Record<string, Record<string, unknown>>;
    expect(Object.keys(document.channels)).toEqual(['helloQueue', 'orderCreated', 'paymentDone']);
    expect(Object.keys(document.operations)).toEqual([
      'orders.hello',
      'orders.onPaid',
      'orders.sendOrderCreated',
      'payments.onOrder',
      'payments.sendPaymentDone',
    ]);
  });
});
