import { MessagingConfigError, RequestTimeoutError } from '../errors/messaging.errors';
import type { IncomingReply } from './broker-backend.interface';
import { PendingRequests } from './pending-requests';

const reply = (text: string): IncomingReply => ({ body: Buffer.from(text), headers: {} });
const text = async (promise: Promise<IncomingReply>): Promise<string> =>
  (await promise).body.toString();

describe('PendingRequests', () => {
  it('settles each request once, by its key', async () => {
    const pending = new PendingRequests();
    const a = pending.add('a', 'orders', 10_000);
    const b = pending.add('b', 'orders', 10_000);
    expect(pending.settle('b', reply('to b'))).toBe(true);
    expect(pending.settle('b', reply('stray'))).toBe(false);
    expect(pending.fail(b, new Error('too late'))).toBe(false);
    expect(pending.fail(a, new Error('send failed'))).toBe(true);
    expect(pending.settle('a', reply('late'))).toBe(false);
    await expect(text(b.promise)).resolves.toBe('to b');
    await expect(a.promise).rejects.toThrow('send failed');
    expect(pending.size).toBe(0);
  });

  it('refuses a second request with a key already waiting, and takes it once the first is done', async () => {
    const pending = new PendingRequests();
    const first = pending.add('order-1', 'cart.total', 10_000);
    expect(() => pending.add('order-1', 'cart.total', 10_000)).toThrow(MessagingConfigError);
    expect(() => pending.add('order-1', 'cart.total', 10_000)).toThrow(
      /give each request in flight its own messageId/,
    );
    // The refused one never took the key: the first still gets its reply, a third one later its own.
    expect(pending.settle('order-1', reply('first'))).toBe(true);
    await expect(text(first.promise)).resolves.toBe('first');
    const third = pending.add('order-1', 'cart.total', 10_000);
    expect(pending.reject('order-1', (r) => new Error(`returned: ${r.target}`))).toBe(true);
    await expect(third.promise).rejects.toThrow('returned: cart.total');
  });

  it('times a request out with RequestTimeoutError naming its target', async () => {
    const pending = new PendingRequests();
    const request = pending.add('k', 'cart.total', 20);
    await expect(request.promise).rejects.toBeInstanceOf(RequestTimeoutError);
    await expect(request.promise).rejects.toThrow(/cart\.total/);
    expect(pending.settle('k', reply('late'))).toBe(false);
  });

  it('fails the requests a tag picks, then all', async () => {
    const pending = new PendingRequests();
    const requests = ['a', 'b', 'c', 'd'].map((key, i) => {
      const request = pending.add(key, 't', 10_000);
      request.tag = i % 2;
      return request;
    });
    pending.failWhere(
      (tag) => tag === 1,
      () => new Error('channel closed'),
    );
    expect(pending.settle('a', reply('to a'))).toBe(true);
    pending.failAll(() => new Error('closed'));
    const outcomes = await Promise.allSettled(requests.map((r) => text(r.promise)));
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value : o.reason.message))).toEqual([
      'to a',
      'channel closed',
      'closed',
      'channel closed',
    ]);
    expect(pending.size).toBe(0);
  });
});
