/**
 * Faults that hit a consumer process (support/consumer-child.ts, a Nest app of its own), in a
 * private vhost of the shared broker:
 *
 * | id  | fault                                                                   | pass bar                                  |
 * | --- | ----------------------------------------------------------------------- | ----------------------------------------- |
 * | F7  | SIGKILL of a random consumer mid-handler (200 ms handlers) 3 times,     | bar; each duplicate was a redelivery      |
 * |     | each restarted at once (a supervisor)                                   | (`redelivered`), at most the window each  |
 * | F8  | SIGSTOP of a consumer (heartbeat 2 s) until the broker drops it, then   | bar; the resumed process does not crash   |
 * |     | SIGCONT                                                                 | and consumes again                        |
 * | F21 | SIGTERM of a consumer under load                                        | exit 0 within shutdownTimeoutMs; no       |
 * |     |                                                                         | redelivery caused by the shutdown; bar    |
 */
import { waitFor } from '@app/messaging/testing';
import { createVhost, type Vhost } from './support/broker';
import { FaultRun } from './support/fault-run';
import type { ConsumerConfig } from './support/consumer-child';
import { expectPassBar } from './support/pass-bar';
import { recordResult } from './support/results';

describe('faults: consumer processes killed, stopped and terminated', () => {
  let vhost: Vhost;
  let run: FaultRun | undefined;

  beforeAll(async () => {
    vhost = await createVhost('faults-proc');
  }, 60_000);
  afterEach(async () => {
    await run?.close();
    run = undefined;
  });
  afterAll(() => vhost?.remove(), 60_000);

  const start = (scenario: string, consumer: Partial<ConsumerConfig> = {}) =>
    FaultRun.start({
      scenario,
      url: vhost.url,
      directUrl: vhost.url,
      consumers: 2,
      consumer,
    }).then((r) => (run = r));

  it('F7 SIGKILL mid-handler x3 with restart: nothing lost, duplicates are redeliveries', async () => {
    const r = await start('f7', { handlerMs: [150, 250] });
    const loading = r.load({ count: 800, ratePerSec: 80 });
    const killed: number[] = [];
    for (const at of [150, 350, 550]) {
      await r.waitSent(at);
      const live = r.live;
      const victim = live[Math.floor(Math.random() * live.length)];
      victim.signal('SIGKILL');
      killed.push(victim.pid);
      expect((await victim.exited).signal).toBe('SIGKILL');
      await r.startConsumer(); // the supervisor
    }
    await loading;
    expect(await r.settle(60_000)).toBe(true);
    expect(await r.consumerCount()).toBe(2);
    const report = await r.finish();
    recordResult('F7 SIGKILL x3 + restart', report, { killed: killed.length });
    expectPassBar(report, r, { duplicatedAtMost: 3 * 10 });
    // Every second handling of a message came from a redelivery, never from a fresh copy.
    const rows = r.ledger
      .childRows()
      .flatMap((row) =>
        row.kind === 'handled' ? [{ id: row.id, redelivered: row.redelivered }] : [],
      );
    // The kills hit work in flight: some messages were handled only after a redelivery.
    expect(rows.some((row) => row.redelivered)).toBe(true);
    for (const id of report.duplicated) {
      const again = rows.filter((row) => row.id === id).slice(1);
      expect(again.every((row) => row.redelivered)).toBe(true);
    }
  });

  it('F8 SIGSTOP until the broker drops the consumer, then SIGCONT: it resumes without crashing', async () => {
    const r = await start('f8', { heartbeatSeconds: 2, handlerMs: [20, 60] });
    const loading = r.load({ count: 800, ratePerSec: 60, settleMs: 40_000 });
    await r.waitSent(150);
    const [frozen] = r.live;
    frozen.signal('SIGSTOP');
    const stoppedAt = Date.now();
    await waitFor(async () => (await r.consumerCount()) === 1, {
      timeoutMs: 30_000,
      intervalMs: 250,
      message: 'the broker dropped the stopped consumer',
    });
    const droppedMs = Date.now() - stoppedAt;
    frozen.signal('SIGCONT');
    await waitFor(async () => (await r.consumerCount()) === 2, {
      timeoutMs: 20_000,
      intervalMs: 250,
      message: 'the resumed consumer subscribed again',
    });
    await loading;
    expect(await r.settle(60_000)).toBe(true);
    expect(frozen.running).toBe(true);
    const report = await r.finish();
    recordResult('F8 SIGSTOP/SIGCONT', report, { brokerDroppedMs: droppedMs });
    expectPassBar(report, r, { duplicatedAtMost: 10 });
  });

  it('F21 SIGTERM under load: exit 0, in-flight work acked, no redelivery from the shutdown', async () => {
    const r = await start('f21', { handlerMs: [50, 150] });
    const loading = r.load({ count: 800, ratePerSec: 100 });
    await r.waitSent(300);
    const [leaving] = r.live;
    const termAt = Date.now();
    leaving.signal('SIGTERM');
    const exit = await leaving.exited;
    const closedMs = Date.now() - termAt;
    await loading;
    expect(await r.settle(60_000)).toBe(true);
    expect(await r.consumerCount()).toBe(1);
    const report = await r.finish();
    recordResult('F21 SIGTERM under load', report, { exit, closedMs });
    expect(exit).toEqual({ code: 0, signal: null });
    expect(closedMs).toBeLessThan(10_000);
    expectPassBar(report, r);
  });
});
