import { gunzipSync } from 'node:zlib';
import { Controller, Injectable, type INestApplication } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { CloudEvent, HTTP } from 'cloudevents';
import {
  type BrokerBackend,
  type CloudEventAttributes,
  Consume,
  DeadLetterService,
  MessageContext,
  MessageProducer,
  MessagingModule,
  MessagingServer,
  Producer,
} from '@app/messaging';
import { waitFor } from '@app/messaging/testing';

/** A message as a plain client of the broker reads it. */
export interface RawMessage {
  /** Application headers (AMQP headers, NATS headers, Redis fields other than ours). */
  readonly headers: Readonly<Record<string, unknown>>;
  readonly contentType?: string;
  readonly contentEncoding?: string;
  readonly body: Buffer;
}

/** The broker's own client: no code of this library. */
export interface RawClient {
  /** Publishes to `topic` exactly these headers and properties, as another application would. */
  publish(
    topic: string,
    message: { headers: Record<string, string>; contentType?: string; body: string },
  ): Promise<void>;
  /** Starts reading what is published to `topic` from now on. */
  tap(topic: string): Promise<RawTap>;
  close(): Promise<void>;
}

export interface RawTap {
  /** The next message published to the topic (waits up to 10 s). */
  next(): Promise<RawMessage>;
  close(): Promise<void>;
}

/** A tap that hands out, in order, the messages a plain client's callback pushes to `messages`. */
export function queuedTap(messages: RawMessage[], close: () => Promise<unknown>): RawTap {
  return {
    next: async () => {
      await waitFor(() => messages.length > 0, { message: 'a message on the plain tap' });
      return messages.shift() as RawMessage;
    },
    close: async () => {
      await close();
    },
  };
}

/** A broker the CloudEvents scenarios run on. */
export interface CloudEventsBroker {
  readonly name: string;
  /** This run's id: services and topics carry it. */
  readonly run: string;
  /** The binary-mode header prefix of the broker's binding (`cloudEvents:` on AMQP, `ce-` elsewhere). */
  readonly prefix: string;
  backend(): BrokerBackend;
  raw(): Promise<RawClient>;
  cleanup?(): Promise<unknown>;
}

interface Seen {
  readonly payload: unknown;
  readonly messageId: string;
  readonly cloudEvent?: CloudEventAttributes;
}

/**
 * SPEC §6 on `broker`, with the official CloudEvents SDK (`cloudevents`) as the other side: events it
 * makes, sent by a plain client in both content modes, reach a handler with their data and attributes;
 * events this library sends, read by a plain client, are events the SDK reads back; a broken event
 * is dead-lettered as malformed; a compressed body carries the broker's own content-encoding mark.
 */
export function describeCloudEvents(broker: CloudEventsBroker): void {
  describe(`CloudEvents and content encoding on ${broker.name}`, () => {
    const topic = `ce.${broker.run}.order`;
    const broken = `ce.${broker.run}.broken`;
    const once = `ce.${broker.run}.once`;
    const service = `ce-${broker.run}`;
    const seen: Seen[] = [];
    let app: INestApplication;
    let raw: RawClient;

    @Controller()
    class Handlers {
      @Consume(topic)
      order(@Payload() payload: unknown, @Ctx() ctx: MessageContext) {
        seen.push({ payload, messageId: ctx.messageId, cloudEvent: ctx.cloudEvent });
      }

      @Consume(once, { idempotent: true })
      onceEach(@Payload() payload: unknown, @Ctx() ctx: MessageContext) {
        seen.push({ payload, messageId: ctx.messageId, cloudEvent: ctx.cloudEvent });
      }

      @Consume(broken, { retry: false })
      never() {
        throw new Error('a malformed message never reaches its handler');
      }
    }

    @Injectable()
    class Producers {
      constructor(
        @Producer(topic) readonly binary: MessageProducer<object>,
        @Producer({ topic, cloudEvents: { mode: 'structured', type: 'com.shop.order.v1' } })
        readonly structured: MessageProducer<object>,
        @Producer({ topic, cloudEvents: false }) readonly plain: MessageProducer<object>,
      ) {}
    }

    beforeAll(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          MessagingModule.forRoot({
            service,
            backend: broker.backend(),
            cloudEvents: true,
            codec: { compressAboveBytes: 1024 },
          }),
        ],
        controllers: [Handlers],
        providers: [Producers],
      }).compile();
      app = moduleRef.createNestApplication({ logger: false });
      app.connectMicroservice({ strategy: app.get(MessagingServer) });
      await app.startAllMicroservices();
      await app.init();
      raw = await broker.raw();
    }, 30_000);

    afterAll(async () => {
      await raw?.close();
      await app?.close();
      await broker.cleanup?.();
    }, 30_000);

    /** The SDK's binary-mode HTTP headers as the broker's binding names them. */
    const onBroker = (headers: Record<string, string>) => {
      const out: Record<string, string> = {};
      for (const [name, value] of Object.entries(headers)) {
        if (name.startsWith('ce-')) out[`${broker.prefix}${name.slice(3)}`] = value;
      }
      return out;
    };
    /** A message read off the broker as the SDK's HTTP binding takes it. */
    const asHttp = (message: RawMessage) => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(message.headers)) {
        const lower = name.toLowerCase();
        const prefix = [broker.prefix.toLowerCase(), 'ce-'].find((p) => lower.startsWith(p));
        if (prefix) headers[`ce-${lower.slice(prefix.length)}`] = String(value);
      }
      if (message.contentType) headers['content-type'] = message.contentType;
      return HTTP.toEvent({ headers, body: message.body.toString('utf8') }) as CloudEvent<unknown>;
    };
    const handled = async (id: string): Promise<Seen> => {
      await waitFor(() => seen.some((s) => s.messageId === id), {
        message: `message ${id} handled`,
      });
      return seen.find((s) => s.messageId === id) as Seen;
    };

    it('hands a binary-mode event of the SDK, sent by a plain client, to its handler', async () => {
      const event = new CloudEvent({
        type: 'com.shop.order.created',
        source: '/shop/orders',
        subject: 'o-1',
        partitionkey: 'customer-7',
        data: { orderId: 'o-1' },
      });
      const message = HTTP.binary(event);
      await raw.publish(topic, {
        headers: onBroker(message.headers as Record<string, string>),
        contentType: message.headers['content-type'],
        body: message.body as string,
      });
      const got = await handled(event.id);
      expect(got.payload).toEqual({ orderId: 'o-1' });
      expect(got.cloudEvent).toMatchObject({
        id: event.id,
        type: 'com.shop.order.created',
        source: '/shop/orders',
        subject: 'o-1',
        time: event.time,
        extensions: { partitionkey: 'customer-7' },
      });
    });

    it('hands a structured-mode event of the SDK to its handler', async () => {
      const event = new CloudEvent({
        type: 'com.shop.order.created',
        source: '/shop/orders',
        data: { orderId: 'o-2', lines: [1, 2] },
      });
      const message = HTTP.structured(event);
      await raw.publish(topic, {
        headers: {},
        contentType: message.headers['content-type'],
        body: message.body as string,
      });
      const got = await handled(event.id);
      expect(got.payload).toEqual({ orderId: 'o-2', lines: [1, 2] });
      expect(got.cloudEvent).toMatchObject({ id: event.id, type: 'com.shop.order.created' });
    });

    it('handles an idempotent event once per source and id, not once per id', async () => {
      const send = (source: string, n: number) =>
        raw.publish(once, {
          headers: onBroker({
            'ce-specversion': '1.0',
            'ce-id': `shared-${broker.run}`,
            'ce-type': 'com.shop.counted',
            'ce-source': source,
          }),
          contentType: 'application/json',
          body: JSON.stringify({ n }),
        });
      await send('/billing', 1);
      await send('/shipping', 2);
      await send('/billing', 3); // the same event again: a duplicate
      await send('/audit', 4);
      const ns = () =>
        seen
          .filter((s) => s.messageId === `shared-${broker.run}`)
          .map((s) => (s.payload as { n: number }).n);
      await waitFor(() => [1, 2, 4].every((n) => ns().includes(n)), {
        message: 'the three distinct events handled',
      });
      expect(ns().sort()).toEqual([1, 2, 4]);
    });

    it('dead-letters an event without a source as malformed, with the reason', async () => {
      const headers = onBroker({ 'ce-specversion': '1.0', 'ce-id': 'no-source', 'ce-type': 't' });
      await raw.publish(broken, { headers, contentType: 'application/json', body: '{}' });
      const deadLetters = app.get(DeadLetterService);
      await waitFor(async () => (await deadLetters.list()).some((l) => l.topic === broken), {
        message: 'the broken event dead-lettered',
      });
      const [letter] = await deadLetters.list();
      expect(letter).toMatchObject({ reason: 'malformed' });
      expect(letter.error).toMatch(/no "source" attribute/);
      expect(await deadLetters.purge()).toBe(1);
    });

    it('sends binary-mode events that the SDK reads from a plain client', async () => {
      const tap = await raw.tap(topic);
      try {
        const id = await app.get(Producers).binary.publish({ orderId: 'o-3' });
        const message = await tap.next();
        const event = asHttp(message);
        expect(event.validate()).toBe(true);
        expect(event).toMatchObject({
          specversion: '1.0',
          id,
          type: topic,
          source: service,
          data: { orderId: 'o-3' },
        });
        // The body is the payload as without CloudEvents: a plain consumer reads it unchanged.
        expect(JSON.parse(message.body.toString('utf8'))).toEqual({ orderId: 'o-3' });
        expect((await handled(id)).cloudEvent).toMatchObject({ id, type: topic, source: service });
      } finally {
        await tap.close();
      }
    });

    it('sends structured-mode events, with a producer type, that the SDK reads', async () => {
      const tap = await raw.tap(topic);
      try {
        const id = await app.get(Producers).structured.publish({ orderId: 'o-4' });
        const message = await tap.next();
        expect(message.contentType).toBe('application/cloudevents+json; charset=utf-8');
        const event = asHttp(message);
        expect(event.validate()).toBe(true);
        expect(event).toMatchObject({ id, type: 'com.shop.order.v1', data: { orderId: 'o-4' } });
        expect((await handled(id)).payload).toEqual({ orderId: 'o-4' });
      } finally {
        await tap.close();
      }
    });

    it("marks a compressed body with the broker's content encoding, which a plain consumer undoes", async () => {
      const tap = await raw.tap(topic);
      try {
        const payload = { orderId: 'o-5', note: 'x'.repeat(4000) };
        const id = await app.get(Producers).plain.publish(payload);
        const message = await tap.next();
        expect(message.contentEncoding).toBe('gzip');
        expect(message.body.length).toBeLessThan(1024);
        expect(JSON.parse(gunzipSync(message.body).toString('utf8'))).toEqual(payload);
        expect((await handled(id)).payload).toEqual(payload);
      } finally {
        await tap.close();
      }
    });
  });
}
