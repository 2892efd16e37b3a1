/**
 * End-to-end behaviour of `@app/messaging` over a real RabbitMQ: restarts of the consuming app,
 * delayed retries across a restart, and interoperability with plain amqplib producers and consumers.
 * Every name carries the run id; afterAll deletes every queue and exchange of this run.
 */
import { randomUUID } from 'node:crypto';
import { Controller, type INestApplication, type Type } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import * as amqplib from 'amqplib';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import {
  AmqpBackend,
  Consume,
  DeadLetterService,
  MessageContext,
  MessagingModule,
  MessagingPublisher,
  MessagingServer,
} from '@app/messaging';
import { BROKER_URL, deleteBrokerObjects } from '../libs/messaging/src/testing/rabbitmq.fixture';
import {
  DELAY_LEVELS,
  delayLevelName,
} from '../libs/messaging/src/backends/amqp/amqp-delay-levels';
import { waitFor } from '@app/messaging/testing';

const RUN = randomUUID().slice(0, 8);
const EXCHANGE = `e2e-amqp-${RUN}`;

describe('messaging over RabbitMQ (e2e)', () => {
  let apps: INestApplication[] = [];
  let raws: ChannelModel[] = [];
  let errors: Error[] = [];
  let counter = 0;

  /** Service name and topic unique to one test. */
  const unique = (): { service: string; topic: string } => {
    counter++;
    return { service: `e2e-${RUN}-${counter}`, topic: `e2e${RUN}.t${counter}` };
  };

  const start = async (
    service: string,
    controllers: Type[],
    { consume = true }: { consume?: boolean } = {},
  ): Promise<INestApplication> => {
    const backend = new AmqpBackend({ url: BROKER_URL, exchange: EXCHANGE });
    backend.on('error', (e) => errors.push(e));
    const moduleRef = await Test.createTestingModule({
      imports: [MessagingModule.forRoot({ backend, service })],
      controllers,
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    if (consume) {
      app.connectMicroservice({ strategy: app.get(MessagingServer) }, { inheritAppConfig: true });
    }
    apps.push(app);
    if (consume) await app.startAllMicroservices();
    await app.init();
    return app;
  };

  /** Closes one app now (and forgets it, so afterEach does not close it twice). */
  const stop = async (app: INestApplication): Promise<void> => {
    apps = apps.filter((a) => a !== app);
    await app.close();
  };

  const rawConnection = async (): Promise<ChannelModel> => {
    const conn = await amqplib.connect(BROKER_URL);
    conn.on('error', () => undefined);
    raws.push(conn);
    return conn;
  };

  const rawChannel = async (): Promise<Channel> => {
    const ch = await (await rawConnection()).createChannel();
    ch.on('error', () => undefined);
    return ch;
  };

  /** Ready messages of a queue, checked on a throwaway channel; -1 when it does not exist. */
  const depth = async (queue: string): Promise<number> => {
    const conn = await amqplib.connect(BROKER_URL);
    conn.on('error', () => undefined);
    try {
      const ch = await conn.createChannel();
      ch.on('error', () => undefined);
      return (await ch.checkQueue(queue)).messageCount;
    } catch {
      return -1;
    } finally {
      await conn.close().catch(() => undefined);
    }
  };

  /** Messages held in the delay levels of this run's exchange (0 before they are declared). */
  const heldInLevels = async (): Promise<number> => {
    const conn = await amqplib.connect(BROKER_URL);
    conn.on('error', () => undefined);
    try {
      const ch = await conn.createChannel();
      ch.on('error', () => undefined);
      let held = 0;
      for (let level = 0; level < DELAY_LEVELS; level++)
        held += (await ch.checkQueue(delayLevelName(EXCHANGE, level))).messageCount;
      return held;
    } catch {
      return 0;
    } finally {
      await conn.close().catch(() => undefined);
    }
  };

  beforeEach(() => {
    errors = [];
  });

  afterEach(async () => {
    const open = apps;
    apps = [];
    await Promise.all(open.map((app) => app.close()));
    const conns = raws;
    raws = [];
    await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
  });

  afterAll(() => deleteBrokerObjects(RUN), 30_000);

  it('finds its topology and unprocessed messages again after a restart', async () => {
    const { service, topic } = unique();
    const seen: Array<{ payload: unknown; messageId: string }> = [];
    @Controller()
    class Counter {
      @Consume(topic)
      handle(@Payload() payload: unknown, @Ctx() ctx: MessageContext): void {
        seen.push({ payload, messageId: ctx.messageId });
      }
    }

    const first = await start(service, [Counter]);
    await stop(first);
    expect(await depth(`${service}.${topic}`)).toBe(0);

    const producer = await start(`${service}-producer`, [], { consume: false });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await app(producer).publish({ topic }, { i }));
    await waitFor(async () => (await depth(`${service}.${topic}`)) === 5, {
      message: '5 messages waiting in the work queue',
    });
    expect(seen).toHaveLength(0);

    await start(service, [Counter]);
    await waitFor(() => seen.length >= 5, { message: '5 messages handled' });
    await waitFor(async () => (await depth(`${service}.${topic}`)) === 0, {
      message: 'work queue drained',
    });
    expect(seen).toHaveLength(5);
    expect(seen.map((s) => s.messageId).sort()).toEqual([...ids].sort());
    expect(seen.map((s) => (s.payload as { i: number }).i).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(errors).toEqual([]);
  });

  it('delivers a delayed retry to a new app after the consumer was restarted during the delay', async () => {
    const { service, topic } = unique();
    const attempts: number[] = [];
    const succeeded: number[] = [];
    @Controller()
    class Flaky {
      @Consume(topic, {
        retry: { maxAttempts: 3, backoff: { initialDelayMs: 1500, multiplier: 1, jitter: 0 } },
      })
      handle(@Ctx() ctx: MessageContext): void {
        attempts.push(ctx.attempt);
        if (ctx.attempt === 1) throw new Error('first attempt fails');
        succeeded.push(ctx.attempt);
      }
    }

    const first = await start(service, [Flaky]);
    const messageId = await app(first).publish({ topic }, { job: 1 });
    await waitFor(async () => (await heldInLevels()) === 1, {
      message: 'retry copy held in the delay levels',
    });
    expect(attempts).toEqual([1]);
    await stop(first);
    // The app was closed during the delay: the retry copy is still held by the broker.
    expect(await heldInLevels()).toBe(1);
    expect(attempts).toEqual([1]);

    const second = await start(service, [Flaky]);
    await waitFor(() => succeeded.length === 1, { message: 'attempt 2 handled' });
    expect(attempts).toEqual([1, 2]);
    expect(succeeded).toEqual([2]);
    expect(await heldInLevels()).toBe(0);
    await waitFor(async () => (await depth(`${service}.${topic}`)) === 0);
    expect(await second.get(DeadLetterService).list()).toEqual([]);
    expect(messageId).toEqual(expect.any(String));
    expect(errors).toEqual([]);
  });

  it('hands bodies of a raw amqplib producer to handlers as object, string or Buffer', async () => {
    const { service, topic } = unique();
    const got = new Map<string, unknown>();
    @Controller()
    class Sink {
      @Consume(topic)
      handle(@Payload() payload: unknown, @Ctx() ctx: MessageContext): void {
        got.set(ctx.messageId, payload);
      }
    }
    await start(service, [Sink]);

    const ch = await rawChannel();
    const send = (id: string, body: Buffer, contentType?: string): void => {
      ch.publish(EXCHANGE, topic, body, {
        messageId: `${id}-${RUN}`,
        ...(contentType ? { contentType } : {}),
      });
    };
    send('json-typed', Buffer.from(JSON.stringify({ a: 1, b: ['x'] })), 'application/json');
    send('json-untyped', Buffer.from(JSON.stringify({ c: true })));
    send('text-typed', Buffer.from('hello there'), 'text/plain');
    send('text-untyped', Buffer.from('plain words'));
    send('bytes', Buffer.from([0xff, 0xfe, 0x00]), 'application/octet-stream');

    await waitFor(() => got.size === 5, { message: '5 raw messages handled' });
    expect(got.get(`json-typed-${RUN}`)).toEqual({ a: 1, b: ['x'] });
    expect(got.get(`json-untyped-${RUN}`)).toEqual({ c: true });
    expect(got.get(`text-typed-${RUN}`)).toBe('hello there');
    expect(got.get(`text-untyped-${RUN}`)).toBe('plain words');
    const bytes = got.get(`bytes-${RUN}`);
    expect(Buffer.isBuffer(bytes)).toBe(true);
    expect([...(bytes as Buffer)]).toEqual([0xff, 0xfe, 0x00]);
    expect(errors).toEqual([]);
  });

  it('lets an unmodified tutorial producer declare its queue after @Consume({ queue }) created it', async () => {
    const { service } = unique();
    const queue = `hello-first-${RUN}`;
    const texts: unknown[] = [];
    @Controller()
    class Greeter {
      @Consume({ queue })
      greet(@Payload() text: unknown): void {
        texts.push(text);
      }
    }
    await start(`${service}-greeter`, [Greeter]);
    // The pika tutorial, as written: channel.queue_declare(queue='hello') (durable False, exclusive
    // False, auto_delete False), then a publish to the default exchange. Before, the queue the Nest
    // app declared first was durable, and this declare failed with PRECONDITION_FAILED.
    const ch = await rawChannel();
    await ch.assertQueue(queue, { durable: false, exclusive: false, autoDelete: false });
    ch.sendToQueue(queue, Buffer.from('Hello World!'));
    await waitFor(() => texts.length === 1, { message: 'tutorial message handled' });
    expect(texts).toEqual(['Hello World!']);
    expect(errors).toEqual([]);
  });

  it('reaches a raw amqplib consumer on a named queue and consumes a foreign non-durable queue', async () => {
    const { service } = unique();
    const outQueue = `hello-${RUN}`;
    const inQueue = `hello-in-${RUN}`;
    const ch = await rawChannel();
    await ch.assertQueue(outQueue, { durable: false });
    await ch.assertQueue(inQueue, { durable: false });

    // Our producer -> raw consumer.
    const producer = await start(`${service}-producer`, [], { consume: false });
    const received: ConsumeMessage[] = [];
    await ch.consume(
      outQueue,
      (msg) => {
        if (msg) received.push(msg);
      },
      { noAck: true },
    );
    const sentId = await app(producer).publish({ queue: outQueue }, 'hi');
    await waitFor(() => received.length === 1, { message: 'raw consumer got the message' });
    const [msg] = received;
    // A string travels as plain text, unquoted: a pika consumer prints it as it was written.
    expect(msg.content.toString('utf8')).toBe('hi');
    expect(msg.properties.contentType).toBe('text/plain; charset=utf-8');
    expect(msg.properties.messageId).toBe(sentId);
    expect(msg.properties.messageId).toEqual(expect.any(String));

    // Raw producer -> @Consume({ queue }) on a foreign non-durable queue.
    const texts: unknown[] = [];
    @Controller()
    class Greeter {
      @Consume({ queue: inQueue })
      greet(@Payload() text: unknown): void {
        texts.push(text);
      }
    }
    await start(`${service}-greeter`, [Greeter]);
    ch.sendToQueue(inQueue, Buffer.from('Hello World!'));
    await waitFor(() => texts.length === 1, { message: 'foreign queue message handled' });
    expect(texts).toEqual(['Hello World!']);
    await waitFor(async () => (await depth(inQueue)) === 0, { message: 'foreign queue drained' });
    expect(errors).toEqual([]);
  });
});

function app(instance: INestApplication): MessagingPublisher {
  return instance.get(MessagingPublisher);
}
