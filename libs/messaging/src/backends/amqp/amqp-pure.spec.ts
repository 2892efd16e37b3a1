/** The pure functions of the AMQP backend, without a broker: names, delay levels, message parsing. */
import type { GetMessage } from 'amqplib';
import { MessagingHeaders as H } from '../../backend/message-headers';
import { DEFAULT_AMQP_OPTIONS, reconnectDelay, resolveAmqpOptions } from './amqp-backend.options';
import { toDeadLetter, toDelivery, newestDeath, withoutBrokerHeaders } from './amqp-messages';
import {
  appliedDelayMs,
  delayAddress,
  delayDeliveryExchange,
  delayLevelName,
  delayRoutingKey,
  deliveryPattern,
  isDelayQueue,
  levelPattern,
  MAX_LEVEL_DELAY_MS,
} from './amqp-delay-levels';
import { DUE_HEADER, parkedHeaders, parkingDelay } from './amqp-parking';
import {
  deadLetterQueueName,
  pickRequestGeneration,
  requestQueueName,
  type RequestQueueProbe,
} from './amqp-topology';

const message = (
  headers: Record<string, unknown>,
  over: { routingKey?: string; messageId?: string; redelivered?: boolean; exchange?: string } = {},
): GetMessage =>
  ({
    content: Buffer.from('{}'),
    fields: {
      deliveryTag: 7,
      redelivered: over.redelivered ?? false,
      exchange: over.exchange ?? 'messaging',
      routingKey: over.routingKey ?? 'order.created',
      messageCount: 0,
    },
    properties: {
      headers,
      messageId: over.messageId ?? 'm-1',
      contentType: 'application/json',
      timestamp: 1_767_225_600,
    },
  }) as unknown as GetMessage;

/** Which levels hold a message routed by `key` (bit n is word 31 - n), and where it ends. */
function levelsOf(key: string): { levels: number[]; address: string } {
  const words = key.split('.');
  const levels = words
    .slice(0, 32)
    .flatMap((bit, i) => (bit === '1' ? [31 - i] : []))
    .sort((a, b) => a - b);
  return { levels, address: words.slice(32).join('.') };
}

/** Whether topic pattern `pattern` matches routing key `key` (`*`: one word, `#`: any, at the end). */
function matches(pattern: string, key: string): boolean {
  const p = pattern.split('.');
  const k = key.split('.');
  if (p.at(-1) === '#') return p.slice(0, -1).every((w, i) => w === '*' || w === k[i]);
  return p.length === k.length && p.every((w, i) => w === '*' || w === k[i]);
}

describe('delay levels and names', () => {
  it.each([
    [1, [0]],
    [100, [2, 5, 6]],
    [1_500, [2, 3, 4, 6, 7, 8, 10]],
    [2_500, [2, 6, 7, 8, 11]],
    [2 ** 31, [31]],
  ])('holds a delay of %d ms exactly, in the levels %j', (delay, levels) => {
    const routed = levelsOf(delayRoutingKey(delay, 'payments.charge'));
    expect(routed).toEqual({ levels, address: 'payments.charge' });
    expect(levels.reduce((sum, n) => sum + 2 ** n, 0)).toBe(delay);
  });

  it('applies whole milliseconds, never less than asked, from 1 ms to 49.7 days', () => {
    expect(appliedDelayMs(0.2)).toBe(1);
    expect(appliedDelayMs(612.3)).toBe(613);
    expect(appliedDelayMs(4 * 86_400_000)).toBe(4 * 86_400_000);
    expect(appliedDelayMs(1e12)).toBe(MAX_LEVEL_DELAY_MS);
    expect(MAX_LEVEL_DELAY_MS).toBe(2 ** 32 - 1);
  });

  it('routes each bit at its level, and delivers to the queue of the address only', () => {
    const key = delayRoutingKey(5, 'a.b');
    expect(matches(levelPattern(2, '1'), key)).toBe(true);
    expect(matches(levelPattern(1, '0'), key)).toBe(true);
    expect(matches(levelPattern(0, '1'), key)).toBe(true);
    expect(matches(levelPattern(0, '0'), key)).toBe(false);
    expect(matches(deliveryPattern('a.b'), key)).toBe(true);
    expect(matches(deliveryPattern('b'), key)).toBe(false);
    expect(matches(deliveryPattern('x.a.b'), key)).toBe(false);
    expect(matches(deliveryPattern('a.b'), delayRoutingKey(5, 'x.a.b'))).toBe(false);
  });

  it('hashes an address that is too long or would read as a wildcard', () => {
    const long = 'q'.repeat(200);
    expect(delayAddress('payments.charge')).toBe('payments.charge');
    expect(delayAddress(long)).toMatch(/^sha256-[0-9a-f]{64}$/);
    expect(delayAddress('a.*.b')).toMatch(/^sha256-/);
    expect(delayAddress('a.#')).not.toBe(delayAddress('a.*'));
    expect(Buffer.byteLength(delayRoutingKey(MAX_LEVEL_DELAY_MS, long))).toBeLessThanOrEqual(255);
  });

  it('names levels, the delivery exchange and dead-letter queues', () => {
    expect(delayLevelName('messaging', 5)).toBe('messaging.delay-level.5');
    expect(delayDeliveryExchange('shop')).toBe('shop.delay-delivery');
    expect(deadLetterQueueName('payments')).toBe('payments.dead-letter');
  });

  it('tells a delay queue (a level, or a tier of older versions), where a replay must never go', () => {
    expect(isDelayQueue('messaging', 'messaging.delay-level.3')).toBe(true);
    expect(isDelayQueue('messaging', 'messaging.retry.100')).toBe(true);
    expect(isDelayQueue('messaging', 'messaging.delay.5000')).toBe(true);
    expect(isDelayQueue('messaging', 'payments.order-created')).toBe(false);
    expect(isDelayQueue('shop', 'messaging.retry.100')).toBe(false);
  });
});

describe('parking delayed publishes', () => {
  const now = () => 1_000_000;

  it.each([
    ['no due time', {}, 0],
    ['due now', { [DUE_HEADER]: 1_000_000 }, 0],
    ['due before', { [DUE_HEADER]: 999_000 }, 0],
    ['not a number', { [DUE_HEADER]: '2000000' }, 0],
    ['due in 1.5 s', { [DUE_HEADER]: 1_001_500 }, 1_500],
    ['due in 0.4 ms', { [DUE_HEADER]: 1_000_000.4 }, 1],
    ['due in a year', { [DUE_HEADER]: 1_000_000 + 365 * 86_400_000 }, MAX_LEVEL_DELAY_MS],
  ])('with %s parks for %d ms', (_, headers, parked) => {
    expect(parkingDelay(headers, now)).toBe(parked);
  });

  it('reads no clock for a message without a due time', () => {
    const clock = jest.fn(now);
    expect(parkingDelay(undefined, clock)).toBe(0);
    expect(parkingDelay({ other: 1 }, clock)).toBe(0);
    expect(clock).not.toHaveBeenCalled();
  });

  it('parks a first attempt as a copy of its topic, whatever its sender claimed', () => {
    const first = toDelivery(
      message({ [H.ATTEMPT]: 9, [H.TOPIC]: 'forged', [DUE_HEADER]: 5 }),
      'q',
    );
    const parked = parkedHeaders(first);
    expect(parked).toMatchObject({ [H.ATTEMPT]: 1, [H.TOPIC]: 'order.created', [DUE_HEADER]: 5 });
    const back = toDelivery(
      message(parked, { exchange: delayDeliveryExchange('messaging'), routingKey: '0.1.q' }),
      'q',
    );
    expect(back).toMatchObject({ attempt: 1, topic: 'order.created' });
    const retried = { ...parked, [H.ATTEMPT]: 2 };
    const viaLevel = message(retried, {
      exchange: delayLevelName('messaging', 3),
      routingKey: 'k',
    });
    expect(toDelivery(viaLevel, 'q')).toMatchObject({ attempt: 2, topic: 'order.created' });
  });
});

describe('request queue generations: every instance of a route joins the same one', () => {
  const absent: RequestQueueProbe = { state: 'absent' };
  const down: RequestQueueProbe = { state: 'down' };
  const up = (consumers: number): RequestQueueProbe => ({ state: 'up', consumers });
  const join = (generation: number, purge = false, drop: number[] = []) => ({
    generation,
    purge,
    drop,
  });
  it.each([
    ['nothing declared yet: the first', [absent, absent, absent], join(0)],
    ['the first is consumed: it', [up(2), absent, absent], join(0)],
    ['the first is down: the next free one', [down, absent, absent], join(1)],
    ['moved on already: join them', [down, up(3), absent], join(1)],
    [
      'the old one is back, unconsumed: join the consumers, drop it',
      [up(0), up(3)],
      join(1, false, [0]),
    ],
    ['the old one expired meanwhile: join the consumers', [absent, up(1), absent], join(1)],
    ['two groups chose apart: the earlier one', [up(2), up(3), absent], join(0)],
    [
      'the one consumed is down, an old one is back: purge it',
      [up(0), down, absent],
      join(0, true),
    ],
    ['racing, nobody consumes yet: the lowest, purged', [up(0), up(0)], join(0, true, [1])],
    ['all down but one free: that one', [down, down, absent], join(2)],
    ['all down: none', [down, down, down], undefined],
  ] as const)('%s', (_, probes, expected) => {
    expect(pickRequestGeneration(probes)).toEqual(expected);
  });

  it('names the generations where no route name can reach, a long route queue by its hash', () => {
    expect(requestQueueName('messaging', 'orders.created')).toBe(
      'messaging.requests.orders.created',
    );
    expect(requestQueueName('messaging', 'orders.created', 2)).toBe(
      'messaging.requests-g2.orders.created',
    );
    // The route 'orders.created.g1' cannot take generation 1 of route 'orders.created'.
    expect(requestQueueName('messaging', 'orders.created.g1')).not.toBe(
      requestQueueName('messaging', 'orders.created', 1),
    );
    const long = requestQueueName('messaging', 'q'.repeat(250), 3);
    expect(long).toMatch(/^messaging\.requests-g3\.[0-9a-f]{64}$/);
  });
});

describe('reconnectDelay: one formula for the connection, consumers and the publisher', () => {
  const reconnect = { initialDelayMs: 500, maxDelayMs: 10_000, multiplier: 3 };
  it.each([
    [0, 1, 500],
    [1, 1, 1_500],
    [2, 1, 4_500],
    [3, 1, 10_000],
    [0, 0, 400],
    [3, 0, 8_000],
  ])('attempt %d with random %d waits %d ms', (attempt, random, expected) => {
    expect(reconnectDelay(reconnect, attempt, random)).toBe(expected);
  });

  it('uses the multiplier of the options (the publisher once doubled whatever it was)', () => {
    expect(reconnectDelay(DEFAULT_AMQP_OPTIONS.reconnect, 2, 1)).toBe(2_000);
  });
});

describe('AMQP messages', () => {
  it('reads a delivery: topic and attempt from the headers of a library copy only', () => {
    const copy = { routingKey: 'payments.q', exchange: '' };
    const retried = toDelivery(
      message({ [H.TOPIC]: 'order.created', [H.ATTEMPT]: 3 }, copy),
      'payments.q',
    );
    expect(retried).toMatchObject({ topic: 'order.created', attempt: 3, queue: 'payments.q' });
    expect(retried.timestamp).toBe(1_767_225_600_000);
    expect(toDelivery(message({ [H.ATTEMPT]: 'lots' }, copy), 'q').attempt).toBe(1);
    // Published to the topic exchange: a first attempt of its routing key, whatever the sender claims.
    const forged = toDelivery(
      message({ [H.TOPIC]: 'admin.delete', [H.ATTEMPT]: 999 }, { routingKey: 'order.created' }),
      'payments.q',
    );
    expect(forged).toMatchObject({ topic: 'order.created', attempt: 1 });
  });

  it('drops RabbitMQ dead-lettering headers from a copy', () => {
    expect(
      withoutBrokerHeaders({
        tenant: 'acme',
        'x-death': [],
        'x-first-death-queue': 'q',
        'x-last-death-reason': 'expired',
        'x-delivery-count': 2,
      }),
    ).toEqual({ tenant: 'acme' });
  });

  it('reads the newest x-death entry (RabbitMQ lists them newest first)', () => {
    const headers = {
      'x-death': [
        {
          queue: 'payments.order.created',
          reason: 'delivery_limit',
          'routing-keys': ['payments.order.created'],
          time: { '!': 'timestamp', value: 1_767_225_660 },
          count: 1,
        },
        {
          queue: 'messaging.retry.500',
          reason: 'expired',
          'routing-keys': ['payments.order.created'],
          time: { '!': 'timestamp', value: 1_767_225_600 },
          count: 1,
        },
      ],
    };
    expect(newestDeath(headers)).toEqual({
      queue: 'payments.order.created',
      reason: 'delivery_limit',
      routingKey: 'payments.order.created',
      time: new Date(1_767_225_660_000),
    });
  });

  it('lists a broker-made dead letter with the queue it failed on, never a retry tier', () => {
    const headers = {
      tenant: 'acme',
      [H.TOPIC]: 'order.created',
      [H.ATTEMPT]: 2,
      'x-delivery-count': 20,
      'x-death': [
        {
          queue: 'payments.order.created',
          reason: 'delivery_limit',
          'routing-keys': ['payments.order.created'],
          time: { value: 1_767_225_660 },
        },
        { queue: 'messaging.retry.500', reason: 'expired', time: { value: 1_767_225_600 } },
      ],
    };
    const letter = toDeadLetter(message(headers, { routingKey: 'payments.order.created' }));
    expect(letter).toMatchObject({
      id: 'broker:m-1:1767225660000',
      topic: 'order.created',
      queue: 'payments.order.created',
      reason: 'delivery-limit',
      errorClass: 'DeliveryLimitExceeded',
      attempts: 2,
      headers: { tenant: 'acme' },
    });
  });

  it('refuses tls options on a plain amqp:// URL, which would ignore them', () => {
    expect(() =>
      resolveAmqpOptions({ urls: ['amqps://u:secret@a', 'amqp://u:secret@b'], tls: { ca: 'x' } }),
    ).toThrow(
      /tls is set but 'amqp:\/\/u:\*\*\*@b' is not a TLS URL\. Use amqps:\/\/ for every URL/,
    );
    const tls = { servername: 'rmq.internal' };
    expect(resolveAmqpOptions({ url: 'amqps://u:secret@a', tls }).tls).toEqual({
      servername: 'rmq.internal',
      rejectUnauthorized: true,
    });
    // The option's own checks (backend/tls-options.spec.ts) run at construction too.
    expect(() => resolveAmqpOptions({ url: 'amqps://u:secret@a', tls: { ca: 'ca.pem' } })).toThrow(
      "AmqpBackend: tls.ca looks like a file path ('ca.pem')",
    );
  });

  it('consumes over a connection of its own unless sharedConnection, which must be a boolean', () => {
    expect(resolveAmqpOptions({ url: 'amqp://a' }).sharedConnection).toBe(false);
    expect(resolveAmqpOptions({ url: 'amqp://a', sharedConnection: true }).sharedConnection).toBe(
      true,
    );
    expect(() =>
      resolveAmqpOptions({ url: 'amqp://a', sharedConnection: 'yes' as unknown as boolean }),
    ).toThrow(/sharedConnection must be true or false/);
  });

  it('names a URL whose password holds a slash without leaking it', () => {
    expect(() => resolveAmqpOptions({ url: 'amqp://app:pa/ss@rabbit:5672' })).toThrow(
      /^(?!.*pa\/ss).*amqp:\/\/app:\*\*\*@rabbit:5672/s,
    );
  });
});

describe('the message id of a foreign message sent without one: a hash of what its sender sent', () => {
  const foreign = (
    over: {
      content?: string;
      headers?: Record<string, unknown>;
      exchange?: string;
      routingKey?: string;
      correlationId?: string;
      redelivered?: boolean;
    } = {},
  ): GetMessage => {
    const msg = message(over.headers ?? { tenant: 'acme', n: 1 }, over);
    return {
      ...msg,
      content: Buffer.from(over.content ?? '{"orderId":"o-1"}'),
      properties: { ...msg.properties, messageId: undefined, correlationId: over.correlationId },
    };
  };
  const idOf = (msg: GetMessage): string => toDelivery(msg, 'q').messageId;

  it('is the same on every delivery: redelivered, counted or dead-lettered by RabbitMQ, its headers reordered', () => {
    const id = idOf(foreign());
    expect(id).toMatch(/^amqp-[0-9a-f]{32}$/);
    expect(idOf(foreign({ redelivered: true, headers: { n: 1, tenant: 'acme' } }))).toBe(id);
    const counted = { tenant: 'acme', n: 1, 'x-delivery-count': 2, 'x-death': [{ count: 1 }] };
    expect(idOf(foreign({ headers: counted }))).toBe(id);
    // Nothing tells two identical messages apart: they share it.
    expect(idOf(foreign())).toBe(id);
  });

  it.each([
    ['body', { content: '{"orderId":"o-2"}' }],
    ['header value', { headers: { tenant: 'other', n: 1 } }],
    ['routing key', { routingKey: 'order.paid' }],
    ['exchange', { exchange: 'orders' }],
    ['correlation id', { correlationId: 'c-1' }],
  ])('differs when the %s differs', (_, over) => {
    expect(idOf(foreign(over))).not.toBe(idOf(foreign()));
  });

  it('leaves the id a sender gave as it is', () => {
    expect(idOf(message({}, { messageId: 'given-1' }))).toBe('given-1');
  });
});
