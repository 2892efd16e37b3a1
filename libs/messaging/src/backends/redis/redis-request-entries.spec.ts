import type { OutgoingMessage } from '../../backend/broker-backend.interface';
import { bodyArgument, TEXT_BODY_MAX } from './redis-messages';
import { decodeReply, encodeReply, fromRequestEntry, requestEntry } from './redis-request-entries';

const message = (body: Buffer): OutgoingMessage => ({
  topic: 'ignored.here',
  body,
  headers: { 'x-messaging-deadline': 1_700_000_000_000, note: 'two\nlines' },
  messageId: 'm-1',
  correlationId: 'c-1',
  contentType: 'application/json',
  contentEncoding: 'gzip',
  timestamp: 1_699_999_999_000,
});

const asBuffer = (entry: string | Buffer): Buffer =>
  typeof entry === 'string' ? Buffer.from(entry) : entry;

describe('volatile request entries', () => {
  it.each([
    ['a UTF-8 body, sent as text', Buffer.from('{"text":"héllo\\n"}')],
    ['a binary body, sent as bytes', Buffer.from([0x0a, 0xff, 0x00, 0xc3, 0x28, 0x0a])],
  ])('carry %s, the headers and the reply address unchanged', (_label, body) => {
    const entry = requestEntry(message(body), 'order.created', 'p:reply:i:1');
    expect(typeof entry).toBe(body[1] === 0xff ? 'object' : 'string');
    const delivery = fromRequestEntry(asBuffer(entry), 'billing.orders');
    expect(delivery).toEqual({
      body,
      topic: 'order.created',
      queue: 'billing.orders',
      headers: { 'x-messaging-deadline': 1_700_000_000_000, note: 'two\nlines' },
      messageId: 'm-1',
      correlationId: 'c-1',
      contentType: 'application/json',
      contentEncoding: 'gzip',
      replyTo: 'p:reply:i:1',
      timestamp: 1_699_999_999_000,
      attempt: 1,
      redelivered: false,
    });
  });

  it('reads nothing from what is not one', () => {
    expect(fromRequestEntry(Buffer.from('no newline'), 'q')).toBeUndefined();
    expect(fromRequestEntry(Buffer.from('not json\nbody'), 'q')).toBeUndefined();
    expect(fromRequestEntry(Buffer.from('[1]\nbody'), 'q')).toBeUndefined();
    expect(fromRequestEntry(Buffer.from('{"t":"a","id":"m"}\nno reply address'), 'q')).toBe(
      undefined,
    );
  });

  it('replies round-trip', () => {
    const body = Buffer.from([0, 1, 2, 255]);
    const sent = { body, headers: { a: 1 }, contentType: 'x/y', contentEncoding: 'gzip' };
    expect(decodeReply(encodeReply(sent))).toEqual(sent);
    expect(decodeReply('{"nope":1}')).toBeUndefined();
    expect(decodeReply('garbage')).toBeUndefined();
  });
});

describe('bodyArgument', () => {
  it('passes small valid UTF-8 as text and anything else as the bytes it is', () => {
    expect(bodyArgument(Buffer.from('{"a":"é"}'))).toBe('{"a":"é"}');
    const binary = Buffer.from([0xc3, 0x28]);
    expect(bodyArgument(binary)).toBe(binary);
    expect(bodyArgument(Buffer.alloc(0))).toBe('');
    const large = Buffer.from('a'.repeat(TEXT_BODY_MAX + 1));
    expect(bodyArgument(large)).toBe(large);
  });
});
