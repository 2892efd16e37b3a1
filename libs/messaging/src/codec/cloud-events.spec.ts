import { gzipSync } from 'node:zlib';
import { CloudEvent, HTTP } from 'cloudevents';
import type { Delivery } from '../backend/broker-backend.interface';
import { MalformedMessageError, MessagingConfigError } from '../errors/messaging.errors';
import {
  idempotencyKey,
  cloudEventHeaders,
  cloudEventsPrefix,
  readCloudEvent,
  resolveCloudEvents,
  structuredEnvelope,
} from './cloud-events';
import { MessageCodec } from './message-codec';

const codec = new MessageCodec({ maxBodyBytes: 4096, compressAboveBytes: false, maxJsonDepth: 16 });

function delivery(parts: Partial<Delivery>): Delivery {
  return {
    body: Buffer.from('{"orderId":"o-1"}'),
    topic: 'order.created',
    queue: 'payments.order.created',
    headers: {},
    messageId: 'broker-id',
    contentType: 'application/json',
    attempt: 1,
    redelivered: false,
    ...parts,
  };
}

const REQUIRED = { specversion: '1.0', id: 'evt-1', source: '/shop', type: 'order.created' };
/**
 * Binary-mode headers of {@link REQUIRED} (and `more`) with `prefix`; with a capital prefix, the
 * names as a client that canonicalizes header names writes them (`Ce-Specversion`).
 */
const binary = (prefix: string, more: Record<string, unknown> = {}) =>
  Object.fromEntries(
    Object.entries({ ...REQUIRED, ...more }).map(([name, value]) => [
      `${prefix}${prefix === 'Ce-' ? name[0].toUpperCase() + name.slice(1) : name}`,
      value,
    ]),
  );

describe('readCloudEvent', () => {
  it('leaves a message that is no CloudEvent alone', () => {
    expect(readCloudEvent(delivery({}), codec)).toBeUndefined();
    expect(readCloudEvent(delivery({ headers: { 'ce-id': 'x' } }), codec)).toBeUndefined();
    expect(readCloudEvent(delivery({ contentType: 'text/plain' }), codec)).toBeUndefined();
  });

  it.each([
    ['AMQP', 'cloudEvents:'],
    ['AMQP (JMS)', 'cloudEvents_'],
    ['NATS, Redis, HTTP', 'ce-'],
    ['Kafka', 'ce_'],
    ['a canonicalizing client', 'Ce-'],
  ])('reads a binary-mode event with the %s prefix %j', (_binding, prefix) => {
    const headers = {
      ...binary(prefix, { subject: 'o-1', time: '2026-12-07T10:00:00Z', partitionkey: 'k' }),
      other: 'kept',
    };
    const read = readCloudEvent(delivery({ headers }), codec);
    expect(read?.payload).toEqual({ orderId: 'o-1' });
    expect(read?.delivery.messageId).toBe('evt-1');
    expect(read?.delivery.headers).toBe(headers);
    expect(read?.delivery.cloudEvent).toEqual({
      ...REQUIRED,
      subject: 'o-1',
      time: '2026-12-07T10:00:00Z',
      datacontenttype: 'application/json',
      dataschema: undefined,
      extensions: { partitionkey: 'k' },
    });
  });

  it('keeps a header named like a prototype key from changing any object', () => {
    const headers = { ...binary('ce-'), 'ce-__proto__': { polluted: 1 }, 'ce-constructor': 'x' };
    const read = readCloudEvent(delivery({ headers }), codec);
    expect(read?.delivery.cloudEvent.extensions).toEqual({ constructor: 'x' });
    expect(Object.getPrototypeOf(read?.delivery.cloudEvent.extensions)).toBe(Object.prototype);
    expect(({} as { polluted?: number }).polluted).toBeUndefined();
  });

  it('reads a binary event whose data is text or bytes by its content type', () => {
    const text = readCloudEvent(
      delivery({ headers: binary('ce-'), body: Buffer.from('hi'), contentType: 'text/plain' }),
      codec,
    );
    expect(text?.payload).toBe('hi');
    const gzipped = readCloudEvent(
      delivery({
        headers: binary('ce-'),
        body: gzipSync(Buffer.from('[1]')),
        contentEncoding: 'gzip',
      }),
      codec,
    );
    expect(gzipped?.payload).toEqual([1]);
  });

  it.each([
    ['data as JSON', { data: { a: 1 } }, { a: 1 }],
    ['data as text', { datacontenttype: 'text/plain', data: 'hello' }, 'hello'],
    [
      'data_base64 as bytes',
      { data_base64: Buffer.from([1, 2]).toString('base64') },
      Buffer.from([1, 2]),
    ],
    ['no data', {}, undefined],
  ])('reads a structured-mode event with %s', (_name, fields, payload) => {
    const body = Buffer.from(JSON.stringify({ ...REQUIRED, comexampleext: 7, ...fields }));
    const read = readCloudEvent(
      delivery({ body, contentType: 'application/cloudevents+json; charset=UTF-8' }),
      codec,
    );
    expect(read?.payload).toEqual(payload);
    expect(read?.delivery.messageId).toBe('evt-1');
    expect(read?.delivery.cloudEvent.extensions).toEqual({ comexampleext: 7 });
  });

  const structured = (event: unknown, contentType = 'application/cloudevents+json') =>
    delivery({ body: Buffer.from(JSON.stringify(event)), contentType });
  const { id: _id, ...noId } = REQUIRED;
  const { source: _source, ...noSource } = REQUIRED;
  const { type: _type, ...noType } = REQUIRED;
  it.each([
    ['binary, no id', delivery({ headers: binary('ce-', { id: '' }) }), /no "id" attribute/],
    [
      'binary, no source',
      delivery({ headers: { 'ce-specversion': '1.0', 'ce-id': '1', 'ce-type': 't' } }),
      /no "source"/,
    ],
    [
      'binary, specversion 0.3',
      delivery({ headers: binary('ce-', { specversion: '0.3' }) }),
      /specversion "0.3": only CloudEvents 1.0/,
    ],
    ['structured, no id', structured({ ...noId, data: 1 }), /structured mode\) has no "id"/],
    ['structured, no source', structured(noSource), /no "source"/],
    ['structured, no type', structured(noType), /no "type"/],
    ['structured, not an object', structured([REQUIRED]), /not a JSON object/],
    [
      'structured, not JSON',
      delivery({ body: Buffer.from('{'), contentType: 'application/cloudevents+json' }),
      /not valid JSON/,
    ],
    [
      'a batch',
      structured([REQUIRED], 'application/cloudevents-batch+json'),
      /batch .* is not read/,
    ],
    [
      'structured, __proto__',
      delivery({
        body: Buffer.from('{"__proto__":{"x":1}}'),
        contentType: 'application/cloudevents+json',
      }),
      /__proto__/,
    ],
  ])('refuses a broken event (%s) as malformed, naming what is wrong', (_name, message, reason) => {
    expect(() => readCloudEvent(message, codec)).toThrow(MalformedMessageError);
    expect(() => readCloudEvent(message, codec)).toThrow(reason);
  });
});

describe('the depth limit of a structured event', () => {
  it('counts the data as deep as in a plain body: the envelope is not one of its levels', () => {
    const shallow = new MessageCodec({
      maxBodyBytes: 4096,
      compressAboveBytes: false,
      maxJsonDepth: 4,
    });
    const data = { a: { b: { c: [1] } } };
    expect(shallow.decode(delivery({ body: Buffer.from(JSON.stringify(data)) }))).toEqual(data);
    const structured = delivery({
      body: Buffer.from(JSON.stringify({ ...REQUIRED, data })),
      contentType: 'application/cloudevents+json',
    });
    expect(readCloudEvent(structured, shallow)?.payload).toEqual(data);
    const deeper = delivery({
      body: Buffer.from(JSON.stringify({ ...REQUIRED, data: { x: data } })),
      contentType: 'application/cloudevents+json',
    });
    expect(() => readCloudEvent(deeper, shallow)).toThrow(/nests deeper than/);
  });
});

describe('idempotencyKey', () => {
  const keyOf = (headers: Record<string, unknown>, messageId = 'broker-id') => {
    const message = delivery({ headers, messageId });
    return idempotencyKey(message, readCloudEvent(message, codec));
  };

  it.each([
    ['a message that is no CloudEvent', {}, 'broker-id', 'broker-id'],
    ['an event of ours (its id is the message id)', binary('ce-'), 'evt-1', 'evt-1'],
    ['a foreign event', binary('ce-'), 'broker-id', '["/shop","evt-1"]'],
    [
      'the same id from another source',
      binary('ce-', { source: '/billing' }),
      'x',
      '["/billing","evt-1"]',
    ],
  ])('keys %s on %j', (_name, headers, messageId, key) => {
    expect(keyOf(headers, messageId)).toBe(key);
  });
});

describe('writing CloudEvents', () => {
  const settings = { source: 'orders', mode: 'binary' as const };
  const sent = { messageId: 'm-1', topic: 'order.created', timestamp: Date.UTC(2026, 11, 7) };

  it('names the binary-mode prefix by broker: the AMQP binding on RabbitMQ, ce- elsewhere', () => {
    expect(cloudEventsPrefix('amqp')).toBe('cloudEvents:');
    expect(['memory', 'redis', 'nats'].map(cloudEventsPrefix)).toEqual(['ce-', 'ce-', 'ce-']);
  });

  it('writes binary-mode headers the official SDK reads as the same event', () => {
    const headers = cloudEventHeaders(settings, 'ce-', sent);
    expect(headers).toEqual({
      'ce-specversion': '1.0',
      'ce-id': 'm-1',
      'ce-type': 'order.created',
      'ce-source': 'orders',
      'ce-time': '2026-12-07T00:00:00.000Z',
    });
    const event = HTTP.toEvent({
      headers: { ...headers, 'content-type': 'application/json' },
      body: '{"a":1}',
    }) as CloudEvent<unknown>;
    expect(event.validate()).toBe(true);
    expect(event).toMatchObject({ id: 'm-1', type: 'order.created', data: { a: 1 } });
  });

  it('gives a queue as the type of a direct send, and a producer type over both', () => {
    const queue = { messageId: 'm-2', queue: 'hello', timestamp: 0 };
    expect(cloudEventHeaders(settings, 'ce-', queue)['ce-type']).toBe('hello');
    expect(cloudEventHeaders({ ...settings, type: 'com.shop.v1' }, 'ce-', sent)['ce-type']).toBe(
      'com.shop.v1',
    );
  });

  it.each([
    ['JSON', { a: [1] }, { a: [1] }],
    ['text', 'hello "you"', 'hello "you"'],
    ['bytes', Buffer.from([0, 255]), Buffer.from([0, 255])],
  ])('writes a structured-mode event of %s that the SDK reads back', (_name, payload, data) => {
    const encoded = codec.encode(
      payload,
      structuredEnvelope({ ...settings, mode: 'structured' }, sent),
    );
    expect(encoded.contentType).toBe('application/cloudevents+json; charset=utf-8');
    const event = HTTP.toEvent({
      headers: { 'content-type': encoded.contentType },
      body: encoded.body.toString('utf8'),
    }) as CloudEvent<unknown>;
    expect(event.validate()).toBe(true);
    expect(event).toMatchObject({ id: 'm-1', source: 'orders', type: 'order.created' });
    if (Buffer.isBuffer(data))
      expect(Buffer.from(event.data_base64 as string, 'base64')).toEqual(data);
    else expect(event.data).toEqual(data);
    // And this library reads its own events back to the same payload.
    const read = readCloudEvent(
      delivery({ body: encoded.body, contentType: encoded.contentType }),
      codec,
    );
    expect(read?.payload).toEqual(data);
  });

  it.each([
    [undefined, undefined, undefined],
    [false, { source: 'x', mode: 'binary' }, undefined],
    [true, undefined, { source: 'orders', mode: 'binary' }],
    [{ mode: 'structured' }, undefined, { source: 'orders', mode: 'structured' }],
    [undefined, { source: '/shop', mode: 'structured' }, { source: '/shop', mode: 'structured' }],
    [
      { type: 'v2' },
      { source: '/shop', mode: 'binary' },
      { source: '/shop', mode: 'binary', type: 'v2' },
    ],
  ] as const)('resolves %j over the module settings %j to %j', (option, inherited, expected) => {
    expect(resolveCloudEvents(option, { service: 'orders', inherited }, 'cloudEvents')).toEqual(
      expected,
    );
  });

  it.each([
    [{ mode: 'json' }, /cloudEvents.mode must be 'binary' or 'structured'/],
    [{ sorce: '/x' }, /no option 'sorce'; did you mean 'source'/],
    [{ source: '' }, /cloudEvents.source must be a non-empty string/],
    ['yes', /cloudEvents must be an object/],
  ])('refuses the option %j at start-up', (option, reason) => {
    const resolve = () => resolveCloudEvents(option as never, { service: 'orders' }, 'cloudEvents');
    expect(resolve).toThrow(MessagingConfigError);
    expect(resolve).toThrow(reason);
  });
});
