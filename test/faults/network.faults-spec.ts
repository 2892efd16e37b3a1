/**
 * Network faults between the services and the broker, through the TCP chaos proxy
 * (support/chaos-proxy.ts) into a private vhost of the shared broker. The producer and the consumer
 * processes connect through the proxy; the checker connects straight to the broker.
 *
 * | id   | fault                                                         | pass bar                               |
 * | ---- | ------------------------------------------------------------- | -------------------------------------- |
 * | F5   | 5 cuts (RST on both legs) under load                          | bar; no `unknown delivery tag` errors  |
 * | F6   | black hole (heartbeatSeconds 2) until the producer notices,   | dead link found within 3 heartbeats;   |
 * |      | held one more heartbeat, then restored                        | every publish settles; bar             |
 * | slow | 100 ms added to every chunk, both ways, mid-load              | bar; nothing rejected                  |
 */
import { waitFor } from '@app/messaging/testing';
import { createVhost, SHARED_BROKER, type Vhost, vhostUrl } from './support/broker';
import { ChaosProxy } from './support/chaos-proxy';
import { FaultRun } from './support/fault-run';
import { COPIES_PER_FAULT, expectPassBar } from './support/pass-bar';
import { recordResult } from './support/results';

describe('faults: network (TCP chaos proxy)', () => {
  let vhost: Vhost;
  let proxy: ChaosProxy;
  let run: FaultRun | undefined;

  beforeAll(async () => {
    vhost = await createVhost('faults-net');
    proxy = new ChaosProxy(SHARED_BROKER.port);
    await proxy.listen();
  }, 60_000);
  afterEach(async () => {
    proxy.restore();
    await run?.close();
    run = undefined;
  });
  afterAll(async () => {
    await proxy?.close();
    await vhost?.remove();
  }, 60_000);

  const start = (scenario: string, heartbeatSeconds = 5) =>
    FaultRun.start({
      scenario,
      url: vhostUrl(proxy.port, vhost.name),
      directUrl: vhost.url,
      consumers: 2,
      consumer: { heartbeatSeconds },
      producer: { heartbeatSeconds },
    }).then((r) => (run = r));

  const channelErrors = (report: { backendErrors: string[] }, r: FaultRun) =>
    [...report.backendErrors, ...r.producerErrors.map(String)].filter((e) =>
      /unknown delivery tag|PRECONDITION_FAILED/i.test(e),
    );

  it('F5 five TCP cuts under load: nothing lost, no stale acks', async () => {
    const r = await start('f5');
    const loading = r.load({ count: 1000, ratePerSec: 150 });
    for (const at of [150, 300, 450, 600, 750]) {
      await r.waitSent(at);
      proxy.cut();
    }
    await loading;
    expect(await r.settle(60_000)).toBe(true);
    await waitFor(async () => (await r.consumerCount()) === 2, { timeoutMs: 15_000 });
    const report = await r.finish();
    recordResult('F5 TCP cut x5', report);
    expectPassBar(report, { duplicatedAtMost: 5 * 2 * 10, copiesAtMost: 5 * COPIES_PER_FAULT });
    expect(channelErrors(report, r)).toEqual([]);
  });

  it('F6 black hole: the dead link is found within 3 heartbeats (2 s) and every publish settles', async () => {
    const r = await start('f6', 2);
    const loading = r.load({ count: 600, ratePerSec: 50, settleMs: 40_000 });
    await r.waitSent(150);
    const holedAt = Date.now();
    proxy.blackhole();
    await waitFor(() => r.backend.status !== 'connected', {
      timeoutMs: 15_000,
      intervalMs: 50,
      message: 'producer noticed the dead link',
    });
    const detectedMs = Date.now() - holedAt;
    // Hold the hole one more heartbeat: the reconnect attempts hit it too.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    proxy.restore();
    await loading;
    expect(await r.settle(60_000)).toBe(true);
    await waitFor(async () => (await r.consumerCount()) === 2, { timeoutMs: 15_000 });
    const report = await r.finish();
    recordResult('F6 black hole', report, { detectedMs });
    // amqplib checks once per heartbeat and gives up after two silent ones: 4 to 6 s; 1 s for a busy box.
    expect(detectedMs).toBeLessThanOrEqual(3 * 2_000 + 1_000);
    expectPassBar(report, { duplicatedAtMost: 2 * 10, copiesAtMost: COPIES_PER_FAULT });
  });

  it('slow link: 100 ms on every chunk mid-load, nothing rejected or lost', async () => {
    const r = await start('slow');
    const loading = r.load({ count: 600, ratePerSec: 100 });
    await r.waitSent(150);
    proxy.delay(100);
    await r.waitSent(450);
    proxy.restore();
    await loading;
    expect(await r.settle(60_000)).toBe(true);
    const report = await r.finish();
    recordResult('slow link 100 ms', report);
    expectPassBar(report);
  });
});
