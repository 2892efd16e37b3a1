/**
 * Connection-level faults on the shared broker, in a private vhost of this run (created here,
 * deleted at the end; only its connections are ever closed):
 *
 * | id  | fault                                                                | pass bar                          |
 * | --- | -------------------------------------------------------------------- | --------------------------------- |
 * | F1  | none: 500 messages, 2 consumer processes                            | bar, 0 duplicates                 |
 * | F2  | `close_all_connections --vhost V` three times under load            | bar, consumers back to 2          |
 * | F2b | 3,000 publishes, 4 broker-side closes: every publish in flight at a  | 0 rejected, 0 lost                |
 * |     | close is written again and resolves                                  |                                   |
 */
import { type CheckReport } from './support/checker';
import { createVhost, type Vhost } from './support/broker';
import { FaultRun } from './support/fault-run';
import { COPIES_PER_FAULT, expectPassBar } from './support/pass-bar';
import { recordResult } from './support/results';
import { waitFor } from '@app/messaging/testing';

describe('faults: broker-side connection closes (private vhost)', () => {
  let vhost: Vhost;
  let run: FaultRun | undefined;

  beforeAll(async () => {
    vhost = await createVhost('faults-conn');
  }, 60_000);
  afterEach(async () => {
    await run?.close();
    run = undefined;
  });
  afterAll(() => vhost?.remove(), 60_000);

  const start = (scenario: string, consumers = 2) =>
    FaultRun.start({ scenario, url: vhost.url, directUrl: vhost.url, consumers }).then(
      (r) => (run = r),
    );

  it('F1 baseline: 500 messages, no fault, each handled exactly once', async () => {
    const r = await start('f1');
    await r.load({ count: 500, ratePerSec: 200 });
    expect(await r.settle(30_000)).toBe(true);
    const report: CheckReport = await r.finish();
    recordResult('F1 baseline', report);
    expectPassBar(report);
    expect(report.handledRows).toBe(500);
  });

  it('F2 operator closes the vhost connections 3 times under load: nothing lost, consumers return', async () => {
    const r = await start('f2');
    const loading = r.load({ count: 1000, ratePerSec: 150 });
    const recovery: number[] = [];
    for (const at of [200, 500, 800]) {
      await r.waitSent(at);
      await vhost.closeConnections('faults F2');
      const closedAt = Date.now();
      await waitFor(async () => (await r.consumerCount()) === 2, {
        timeoutMs: 10_000,
        intervalMs: 100,
        message: 'both consumers subscribed again',
      });
      recovery.push(Date.now() - closedAt);
    }
    await loading;
    expect(await r.settle(60_000)).toBe(true);
    expect(await r.consumerCount()).toBe(2);
    const report = await r.finish();
    recordResult('F2 operator close x3', report, { resubscribedMs: recovery });
    // At most the unacked window (prefetch 10 x 2 consumers) per close may be handled twice.
    expectPassBar(report, { duplicatedAtMost: 3 * 2 * 10, copiesAtMost: 3 * COPIES_PER_FAULT });
    for (const ms of recovery) expect(ms).toBeLessThan(5_000);
  });

  it('F2b publishes in flight at 4 broker-side closes are written again and resolve (0 rejected of 3,000)', async () => {
    const r = await start('f2b');
    const loading = r.load({ count: 3000, ratePerSec: 600 });
    for (const at of [400, 1100, 1800, 2500]) {
      await r.waitSent(at);
      await vhost.closeConnections('faults F2b');
    }
    await loading;
    expect(await r.settle(60_000)).toBe(true);
    const report = await r.finish();
    const reconnects = r.producerStatuses.filter((s) => s.status === 'reconnecting').length;
    recordResult('F2b in-flight publishes x4 closes', report, { producerReconnects: reconnects });
    expect(reconnects).toBeGreaterThanOrEqual(4);
    expect(report.rejectedBy).toEqual({});
    expectPassBar(report, { duplicatedAtMost: 4 * 2 * 10, copiesAtMost: 4 * COPIES_PER_FAULT });
  });
});
