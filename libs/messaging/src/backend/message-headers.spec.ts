import type { Delivery } from './broker-backend.interface';
import {
  attemptOf,
  deadLetterHeaders,
  MessagingHeaders as H,
  producerHeaders,
  readDeadLetter,
  replayHeaders,
  retryHeaders,
  topicOf,
  truncateUtf8,
} from './message-headers';

const delivery = (over: Partial<Delivery> = {}): Delivery => ({
  body: Buffer.from('{"a":1}'),
  topic: 'order.created',
  queue: 'payments.order.created',
  headers: { tenant: 'acme' },
  messageId: 'm-1',
  correlationId: 'c-1',
  contentType: 'application/json',
  attempt: 1,
  redelivered: false,
  ...over,
});
const failure = (message: string, at = new Date('2026-01-01T00:00:00Z')) => ({
  reason: 'handler-error' as const,
  message,
  errorClass: 'TypeError',
  at,
});

describe('attemptOf: the attempt header, which anyone who can publish can forge', () => {
  it.each<[unknown, number]>([
    [undefined, 1],
    [1, 1],
    [4, 4],
    ['7', 7],
    [1_000_000, 1_000_000],
    [1_000_001, 1],
    [0, 1],
    [-3, 1],
    [2.5, 1],
    ['2.5', 1],
    ['12345678', 1],
    ['3e2', 1],
    [true, 1],
    [{ value: 3 }, 1],
  ])('%j -> %d', (value, expected) => {
    expect(attemptOf(value === undefined ? {} : { [H.ATTEMPT]: value })).toBe(expected);
  });
});

describe('topicOf', () => {
  it('prefers the original topic a retry or delay copy carries over the key it was routed by', () => {
    expect(topicOf({ [H.TOPIC]: 'order.created' }, 'payments.order.created')).toBe('order.created');
    expect(topicOf({}, 'order.created')).toBe('order.created');
    expect(topicOf({ [H.TOPIC]: '' }, 'order.created')).toBe('order.created');
    expect(topicOf({ [H.TOPIC]: 42 }, 'order.created')).toBe('order.created');
  });
});

describe('retry and dead-letter headers, written by any backend and read back', () => {
  it('stamps a retry copy with the next attempt, the first and last failure and the topic', () => {
    const first = retryHeaders(delivery(), failure('boom 1'));
    expect(first).toEqual({
      tenant: 'acme',
      [H.ATTEMPT]: 2,
      [H.FIRST_FAILURE]: '2026-01-01T00:00:00.000Z',
      [H.LAST_FAILURE]: '2026-01-01T00:00:00.000Z',
      [H.LAST_ERROR]: 'boom 1',
      [H.TOPIC]: 'order.created',
    });
    const later = new Date('2026-01-01T00:00:05Z');
    const second = retryHeaders(delivery({ headers: first, attempt: 2 }), failure('boom 2', later));
    expect(second).toMatchObject({
      [H.ATTEMPT]: 3,
      [H.FIRST_FAILURE]: '2026-01-01T00:00:00.000Z',
      [H.LAST_FAILURE]: '2026-01-01T00:00:05.000Z',
      [H.LAST_ERROR]: 'boom 2',
    });
  });

  it('keeps only the headers the backend passes (not its broker-made ones)', () => {
    const d = delivery({ headers: { tenant: 'acme', 'x-death': [] } });
    expect(retryHeaders(d, failure('x'), { tenant: 'acme' })).not.toHaveProperty('x-death');
  });

  it('round-trips a dead letter: what deadLetterHeaders wrote, readDeadLetter reads', () => {
    const d = delivery({
      attempt: 3,
      headers: retryHeaders(delivery({ attempt: 2 }), failure('a')),
    });
    const now = new Date('2026-01-01T00:01:00Z');
    const headers = deadLetterHeaders(
      d,
      { ...failure('b'.repeat(5000)), reason: 'max-attempts' },
      d.headers,
      now,
    );
    const letter = readDeadLetter({
      body: d.body,
      headers,
      messageId: 'm-1',
      correlationId: 'c-1',
    });
    expect(letter).toMatchObject({
      messageId: 'm-1',
      correlationId: 'c-1',
      topic: 'order.created',
      queue: 'payments.order.created',
      headers: { tenant: 'acme' },
      reason: 'max-attempts',
      errorClass: 'TypeError',
      attempts: 3,
      deadLetteredAt: now,
    });
    expect(letter?.id).toEqual(expect.any(String));
    expect(Buffer.byteLength(letter?.error ?? '')).toBe(1024);
    expect(replayHeaders(letter!)).toEqual({ tenant: 'acme', [H.TOPIC]: 'order.created' });
  });

  it('reads nothing from a message the library did not dead-letter', () => {
    expect(readDeadLetter({ body: Buffer.alloc(0), headers: { tenant: 'acme' } })).toBeUndefined();
  });

  it('strips every library header, and only those, from the producer headers', () => {
    const stamped = deadLetterHeaders(delivery(), failure('x'));
    expect(producerHeaders({ ...stamped, [H.COMPRESSION]: 'gzip' })).toEqual({
      tenant: 'acme',
      [H.COMPRESSION]: 'gzip',
    });
    // Dead letters parked by earlier builds carry the headers those wrote.
    const legacy = {
      'x-messaging-dead-letter-error': 'boom',
      'x-messaging-dead-letter-attempts': 3,
    };
    expect(producerHeaders({ ...legacy, tenant: 'acme' })).toEqual({ tenant: 'acme' });
  });

  it('truncates error text on a character boundary', () => {
    expect(truncateUtf8('é'.repeat(600), 1024)).toBe('é'.repeat(512));
    expect(truncateUtf8('€'.repeat(400), 1024)).toBe('€'.repeat(341));
    expect(truncateUtf8('short')).toBe('short');
  });
});
