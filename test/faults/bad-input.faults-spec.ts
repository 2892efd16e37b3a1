/**
 * Bad messages among good ones, in a private vhost of the shared broker:
 *
 * | id   | injected                                                              | pass bar                                  |
 * | ---- | --------------------------------------------------------------------- | ----------------------------------------- |
 * | F10  | 20 poison messages (handler always throws), maxAttempts 3, 100 ms     | each called exactly 3 times, dead-lettered |
 * |      | retries, among 300 good ones                                          | once (`max-attempts`); the rest handled    |
 * | F12  | malformed bodies via raw amqplib: not JSON, empty, bytes ff fe,       | each dead-lettered once (`malformed`),     |
 * |      | `__proto__` and `constructor.prototype` keys, 100k-deep nesting,      | handler never called, prototype intact,    |
 * |      | 2 MiB JSON (over maxBodyBytes 1 MiB)                                  | consumers alive; good messages flow       |
 * | F13a | a 2 MiB payload through `publish()`                                   | `PayloadTooLargeError` at once; the next  |
 * |      |                                                                       | publishes are confirmed                   |
 * | F18  | 5 publishes to a topic no queue is bound to, among 200                | each rejects with `UnroutableError`; the  |
 * |      |                                                                       | rest confirmed and handled                |
 */
import { randomUUID } from 'node:crypto';
import { createVhost, type Vhost } from './support/broker';
import { FaultRun } from './support/fault-run';
import { expectPassBar } from './support/pass-bar';
import { recordResult } from './support/results';

describe('faults: poison, malformed and oversized messages (private vhost)', () => {
  let vhost: Vhost;
  let run: FaultRun | undefined;

  beforeAll(async () => {
    vhost = await createVhost('faults-bad');
  }, 60_000);
  afterEach(async () => {
    await run?.close();
    run = undefined;
  });
  afterAll(() => vhost?.remove(), 60_000);

  it('F10 poison messages: 3 attempts each, then dead-lettered once with their reason', async () => {
    const r = await FaultRun.start({
      scenario: 'f10',
      url: vhost.url,
      directUrl: vhost.url,
      consumers: 2,
      consumer: { maxAttempts: 3, retryDelayMs: 100 },
    });
    run = r;
    await r.load({ count: 320, ratePerSec: 160, body: (seq) => ({ seq, poison: seq % 16 === 0 }) });
    expect(await r.settle(30_000)).toBe(true);
    const report = await r.finish();
    recordResult('F10 poison x20', report);
    expectPassBar(report, { dead: 20 });
    expect(report.deadBy).toEqual({ 'max-attempts': 20 });
    const calls = new Map<string, number>();
    for (const row of r.ledger.childRows()) {
      if (row.kind === 'attempt') calls.set(row.id, (calls.get(row.id) ?? 0) + 1);
    }
    expect([...calls.values()]).toEqual(Array.from({ length: 20 }, () => 3));
    expect(report.handled).toBe(300);
  });

  it('F12 malformed bodies from a raw client are dead-lettered once, never reach the handler', async () => {
    const r = await FaultRun.start({
      scenario: 'f12',
      url: vhost.url,
      directUrl: vhost.url,
      consumers: 2,
    });
    run = r;
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const big = JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) });
    const bodies: Array<[string, Buffer]> = [
      ['not json', Buffer.from('not json{')],
      ['empty', Buffer.alloc(0)],
      ['bytes ff fe', Buffer.from([0xff, 0xfe])],
      ['__proto__', Buffer.from('{"__proto__":{"p":1}}')],
      ['constructor.prototype', Buffer.from('{"constructor":{"prototype":{"p":1}}}')],
      ['100k-deep nesting', Buffer.from(deep)],
      ['2 MiB body', Buffer.from(big)],
    ];
    const loading = r.load({ count: 300, ratePerSec: 100 });
    await r.waitSent(100);
    const ch = await r.confirmChannel();
    const bad = new Map<string, string>();
    for (const [i, [name, body]] of bodies.entries()) {
      const id = randomUUID();
      bad.set(id, name);
      r.expectDead(id);
      const confirmed = await new Promise<boolean>((resolve) =>
        ch.publish(
          'messaging',
          r.topic,
          body,
          { messageId: id, contentType: 'application/json', persistent: true, mandatory: true },
          (err) => resolve(!err),
        ),
      );
      r.recordForeign(id, 10_000 + i, confirmed);
    }
    await ch.close();
    await loading;
    expect(await r.settle(30_000)).toBe(true);
    expect(r.live).toHaveLength(2);
    const report = await r.finish();
    recordResult('F12 malformed x7', report);
    expectPassBar(report, { dead: bodies.length });
    expect(report.deadBy).toEqual({ malformed: bodies.length });
    const reachedHandler = r.ledger.childRows().filter((row) => 'id' in row && bad.has(row.id));
    expect(reachedHandler).toEqual([]);
  });

  it('F13a a payload over maxBodyBytes is refused with PayloadTooLargeError; publishing goes on', async () => {
    const r = await FaultRun.start({
      scenario: 'f13a',
      url: vhost.url,
      directUrl: vhost.url,
      consumers: 1,
    });
    run = r;
    const loading = r.load({ count: 200, ratePerSec: 100 });
    await r.waitSent(50);
    await r.publish(999_999, { seq: 999_999, pad: 'x'.repeat(2 * 1024 * 1024) });
    await loading;
    expect(await r.settle(30_000)).toBe(true);
    const report = await r.finish();
    recordResult('F13a oversized publish()', report);
    expect(report.rejectedBy).toEqual({ PayloadTooLargeError: 1 });
    expectPassBar(report, { rejected: 1 });
    expect(report.handled).toBe(200);
  });

  it('F18 publishes to a topic nobody consumes reject with UnroutableError, never resolve', async () => {
    const r = await FaultRun.start({
      scenario: 'f18',
      url: vhost.url,
      directUrl: vhost.url,
      consumers: 1,
    });
    run = r;
    const loading = r.load({ count: 200, ratePerSec: 100 });
    await r.waitSent(50);
    await Promise.all(
      [1, 2, 3, 4, 5].map((i) => r.publish(900_000 + i, { seq: i }, `${r.topic}.nobody`)),
    );
    await loading;
    expect(await r.settle(30_000)).toBe(true);
    const report = await r.finish();
    recordResult('F18 unroutable x5', report);
    expect(report.rejectedBy).toEqual({ UnroutableError: 5 });
    expectPassBar(report, { rejected: 5 });
    expect(report.handled).toBe(200);
  });
});
