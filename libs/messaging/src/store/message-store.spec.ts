import type { OutgoingMessage } from '../backend/broker-backend.interface';
import { MessagingHeaders } from '../backend/message-headers';
import { outboxMessageOf, outgoingOf } from './message-store';

const outgoing = (overrides: Partial<OutgoingMessage> = {}): OutgoingMessage => ({
  topic: 'order.created',
  body: Buffer.from([0x1f, 0x8b, 0x08]),
  headers: { 'x-custom': 'yes', n: 3 },
  messageId: 'm-1',
  correlationId: 'c-1',
  contentType: 'application/json',
  timestamp: 1_700_000_000_000,
  delayMs: 250,
  ...overrides,
});

describe('outboxMessageOf / outgoingOf', () => {
  it('keep a content encoding in the stored headers and give it back as the property', () => {
    const message = outgoing({ contentEncoding: 'gzip' });
    const stored = outboxMessageOf(message, true);
    expect(stored.headers).toEqual({
      'x-custom': 'yes',
      n: 3,
      [MessagingHeaders.COMPRESSION]: 'gzip',
    });
    expect(message.headers).toEqual({ 'x-custom': 'yes', n: 3 });
    expect(outgoingOf(stored, 1_700_000_000_500)).toEqual({
      ...message,
      timestamp: 1_700_000_000_500,
    });
  });

  it('store an uncompressed message with its headers object as it is', () => {
    const message = outgoing();
    const stored = outboxMessageOf(message, false, 'key-1');
    expect(stored).toEqual({
      orderingKey: 'key-1',
      topic: 'order.created',
      queue: undefined,
      messageId: 'm-1',
      correlationId: 'c-1',
      contentType: 'application/json',
      headers: message.headers,
      body: message.body,
      delayMs: 250,
      mandatory: false,
    });
    expect(stored.headers).toBe(message.headers);
    const back = outgoingOf(stored, message.timestamp);
    expect(back.headers).toBe(message.headers);
    expect(back.contentEncoding).toBeUndefined();
  });

  it('order by the topic, or by the queue of a direct send, unless a key is given', () => {
    expect(outboxMessageOf(outgoing(), true).orderingKey).toBe('order.created');
    const direct = outgoing({ topic: undefined, queue: 'billing' });
    expect(outboxMessageOf(direct, true).orderingKey).toBe('billing');
  });

  it('read the header of a row written before content encoding was a property', () => {
    const row = {
      ...outboxMessageOf(outgoing(), true),
      headers: { a: 1, [MessagingHeaders.COMPRESSION]: 'gzip' },
    };
    const message = outgoingOf(row, 1);
    expect(message.contentEncoding).toBe('gzip');
    expect(message.headers).toEqual({ a: 1 });
  });
});
