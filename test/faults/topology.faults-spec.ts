/**
 * Topology deleted under load, in a private vhost of the shared broker (RELIABILITY.md F15):
 *
 * | id       | fault                                                      | pass bar                                 |
 * | -------- | ---------------------------------------------------------- | ---------------------------------------- |
 * | F15      | the work queue deleted (raw `queue.delete`) under load     | re-declared and both consumers back ≤ 5 s; |
 * |          |                                                            | every message confirmed after the delete  |
 * |          |                                                            | handled; publishes meanwhile settle       |
 * | F15-tier | the delay level `messaging.delay-level.6` (queue + exch.)  | publishing and retries go on; every       |
 * |          | deleted while every message fails its first attempt        | message handled on attempt 2, except the  |
 * |          |                                                            | copies the delete itself destroyed         |
 *
 * Deleting a queue destroys the messages in it: the operator, not the library, loses those. The
 * checker's `lost` is therefore split at the moment of the delete: a message confirmed (or, for the
 * tier, last failed) before it may have been destroyed; anything after it must arrive.
 */
import { waitFor } from '@app/messaging/testing';
import { createVhost, type Vhost } from './support/broker';
import { FaultRun } from './support/fault-run';
import { COPIES_PER_FAULT, expectPassBar } from './support/pass-bar';
import { recordResult } from './support/results';

describe('faults: queues deleted under load (private vhost)', () => {
  let vhost: Vhost;
  let run: FaultRun | undefined;

  beforeAll(async () => {
    vhost = await createVhost('faults-topo');
  }, 60_000);
  afterEach(async () => {
    await run?.close();
    run = undefined;
  });
  afterAll(() => vhost?.remove(), 60_000);

  it('F15 work queue deleted under load: re-declared, consumers back, later messages all handled', async () => {
    const r = await FaultRun.start({
      scenario: 'f15',
      url: vhost.url,
      directUrl: vhost.url,
      consumers: 2,
    });
    run = r;
    const loading = r.load({ count: 800, ratePerSec: 100 });
    await r.waitSent(300);
    const ch = await r.channel();
    await ch.deleteQueue(r.workQueue);
    const deletedAt = Date.now();
    await ch.close();
    await waitFor(async () => (await r.consumerCount()) === 2, {
      timeoutMs: 5_000,
      intervalMs: 50,
      message: 'work queue declared again with both consumers',
    });
    const backMs = Date.now() - deletedAt;
    await loading;
    await r.settle(30_000);
    const report = await r.finish();
    const confirmedAt = new Map(
      r.ledger
        .rows()
        .flatMap((row) => (row.kind === 'confirmed' ? [[row.id, row.at] as const] : [])),
    );
    const destroyed = report.lost.filter((id) => (confirmedAt.get(id) ?? 0) < deletedAt);
    const lostAfter = report.lost.filter((id) => (confirmedAt.get(id) ?? 0) >= deletedAt);
    recordResult('F15 work queue deleted', report, {
      resubscribedMs: backMs,
      destroyedByDelete: destroyed.length,
      lostAfterDelete: lostAfter.length,
    });
    expect(lostAfter).toEqual([]);
    // A publish between the delete and the re-declare may be returned as unroutable: reported, not lost.
    // So may one the broker nacks because its queue went away under it ("did not accept").
    const rejectedOther = Object.entries(report.rejectedSample).filter(
      ([k, message]) =>
        k !== 'UnroutableError' && !(k === 'PublishFailedError' && /did not accept/.test(message)),
    );
    expect(rejectedOther).toEqual([]);
    expectPassBar(
      { ...report, lost: lostAfter },
      {
        duplicatedAtMost: 2 * 10,
        rejected: report.rejected,
      },
    );
  });

  it('F15-tier retry tier deleted while every message retries once: retries and publishing go on', async () => {
    const r = await FaultRun.start({
      scenario: 'f15t',
      url: vhost.url,
      directUrl: vhost.url,
      consumers: 2,
      consumer: { retryDelayMs: 100, maxAttempts: 3 },
    });
    run = r;
    // A 100 ms retry (0b1100100) waits in levels 6, 5 and 2: the first of them is deleted.
    const tier = 'messaging.delay-level.6';
    const loading = r.load({ count: 600, ratePerSec: 80, body: (seq) => ({ seq, failUntil: 2 }) });
    await r.waitSent(200);
    const ch = await r.channel();
    await ch.deleteQueue(tier);
    await ch.deleteExchange(tier);
    const deletedAt = Date.now();
    await ch.close();
    await loading;
    const lastFailure = new Map<string, number>();
    const failedBeforeDelete = (id: string): boolean => {
      for (const row of r.ledger.childRows())
        if (row.kind === 'attempt') lastFailure.set(row.id, row.at);
      return (lastFailure.get(id) ?? Infinity) < deletedAt + 1_000;
    };
    await r.settle(30_000, failedBeforeDelete);
    const report = await r.finish([2, 5, 6].map((n) => `messaging.delay-level.${n}`));
    failedBeforeDelete('');
    const destroyed = report.lost.filter(
      (id) => (lastFailure.get(id) ?? Infinity) < deletedAt + 1_000,
    );
    const lostAfter = report.lost.filter((id) => !destroyed.includes(id));
    const secondAttempts = new Set(
      r.ledger
        .childRows()
        .flatMap((row) => (row.kind === 'handled' && row.attempt === 2 ? [row.id] : [])),
    ).size;
    recordResult('F15-tier retry tier deleted', report, {
      destroyedByDelete: destroyed.length,
      lostAfterDelete: lostAfter.length,
      handledOnAttempt2: secondAttempts,
    });
    expect(lostAfter).toEqual([]);
    // A retry copy whose confirm was lost with its channel is written again: a second copy.
    expectPassBar(
      { ...report, lost: lostAfter },
      {
        duplicatedAtMost: 2 * 10,
        copiesAtMost: COPIES_PER_FAULT,
      },
    );
    expect(secondAttempts).toBe(report.handled);
  });
});
