import { BackendClosedError, MessagingConfigError } from '../errors/messaging.errors';
import type { OutgoingMessage } from './broker-backend.interface';
import { requestRefusal } from './request-guards';

describe('requestRefusal: what every backend refuses before a request is sent', () => {
  const message = (delayMs?: number) =>
    ({
      topic: 't',
      body: Buffer.alloc(0),
      headers: {},
      messageId: 'm',
      timestamp: 0,
      delayMs,
    }) as OutgoingMessage;

  it.each([
    ['open, not delayed', false, undefined, undefined, undefined],
    ['open, delay 0', false, 0, undefined, undefined],
    ['closed', true, undefined, BackendClosedError, 'XBackend is closed'],
    ['closed and delayed: closed first', true, 5, BackendClosedError, 'XBackend is closed'],
    [
      'delayed',
      false,
      5,
      MessagingConfigError,
      'XBackend: a request cannot be delayed (delayMs); send it without a delay.',
    ],
  ])('%s', (_case, closed, delayMs, type, text) => {
    const refused = requestRefusal('XBackend', closed, message(delayMs));
    if (type === undefined) expect(refused).toBeUndefined();
    else {
      expect(refused).toBeInstanceOf(type);
      expect(refused?.message).toBe(text);
    }
  });
});
