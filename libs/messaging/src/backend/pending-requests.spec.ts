import { RequestTimeoutError } from '../errors/messaging.errors';
import type { IncomingReply } from './broker-backend.interface';
import { PendingRequests } from './pending-requests';

const reply = (text: string): IncomingReply => ({ body: Buffer.from(text), headers: {} });
const text = async (promise: Promise<IncomingReply>): Promise<string> =>
  (await promise).body.toString();

describe('PendingRequests', () => {
  it('settles each request once, by its key, oldest first when two share a key', async () => {
    const pending = new PendingRequests();
    const a = pending.add('k', 'orders', 10_000);
    const b = pending.add('k', 'orders', 10_000);
    const c = pending.add('other', 'orders', 10_000);
    expect(pending.settle('k', reply('first'))).toBe(true);
    expect(pending.settle('k', reply('second'))).toBe(true);
    expect(pending.settle('k', reply('stray'))).toBe(false);
    expect(pending.fail(a, new Error('too late'))).toBe(false);
    expect(pending.fail(c, new Error('send failed'))).toBe(true);
    await expect(text(a.promise)).resolves.toBe('first');
    await expect(text(b.promise)).resolves.toBe('second');
    await expect(c.promise).rejects.toThrow('send failed');
    expect(pending.size).toBe(0);
  });

  it('times a request out with RequestTimeoutError naming its target', async () => {
    const pending = new PendingRequests();
    const request = pending.add('k', 'cart.total', 20);
    await expect(request.promise).rejects.toBeInstanceOf(RequestTimeoutError);
    await expect(request.promise).rejects.toThrow(/cart\.total/);
    expect(pending.settle('k', reply('late'))).toBe(false);
  });

  it('fails the requests a tag picks, in a chain of one key too, and then all', async () => {
    const pending = new PendingRequests();
    const requests = ['a', 'a', 'a', 'b'].map((key, i) => {
      const request = pending.add(key, 't', 10_000);
      request.tag = i % 2;
      return request;
    });
    pending.failWhere(
      (tag) => tag === 1,
      () => new Error('channel closed'),
    );
    expect(pending.settle('a', reply('to the first'))).toBe(true);
    pending.failAll(() => new Error('closed'));
    const outcomes = await Promise.allSettled(requests.map((r) => text(r.promise)));
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value : o.reason.message))).toEqual([
      'to the first',
      'channel closed',
      'closed',
      'channel closed',
    ]);
    expect(pending.size).toBe(0);
  });
});
