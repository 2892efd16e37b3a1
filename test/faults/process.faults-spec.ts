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
 * | F9  | a message that makes its consumer exit(1) mid-handler, work queue   | the poison dead-lettered once by the      |
 * |     | `x-delivery-limit` 3, every exited consumer restarted (supervisor)  | broker (`delivery_limit`) after ≤ 4       |
 * |     |                                                                     | deliveries; every other message handled,  |
 * |     |                                                                     | or dead-lettered by the same limit when it |
 * |     |                                                                     | was unacked at each crash (collateral)    |
 * | F21 | SIGTERM of a consumer under load                                        | exit 0 within shutdownTimeoutMs; no       |
 * |     |                                                                         | redelivery caused by the shutdown; bar    |
 */
import { gate, waitFor } from '@app/messaging/testing';
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
    expectPassBar(report, { duplicatedAtMost: 3 * 10 });
    // Every second handling of a message came from a redelivery, never from a fresh copy.
    const rows = r.ledger
      .childRows()
      .flatMap((row) =>
        row.kind === 'handled' ? [{ id: row.id, redelivered: row.redelivered }] : [],
      );
    // The kills hit work in flight: some messages were handled only after a redelivery.
    expect(rows.some((row) => row.redelivered)).toBe(true);
    // (Rows come per child process, not in time order: at most one handling of an id is a first
    // delivery, every other one a redelivery.)
    for (const id of report.duplicated) {
      const firsts = rows.filter((row) => row.id === id && !row.redelivered);
      expect(firsts.length).toBeLessThanOrEqual(1);
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
    expectPassBar(report, { duplicatedAtMost: 10 });
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
    expectPassBar(report);
  });

  it('F9 a crash-loop message is dead-lettered by the delivery limit; the rest flows', async () => {
    const r = await start('f9', { deliveryLimit: 3, handlerMs: [10, 30] });
    let restarts = 0;
    let supervising = true;
    const stopSupervisor = gate();
    // The supervisor: every consumer that exits is replaced (bounded).
    const supervise = async (): Promise<void> => {
      while (supervising && restarts < 12) {
        await Promise.race([...r.live.map((c) => c.exited), stopSupervisor.promise]);
        while (supervising && r.live.length < 2 && restarts < 12) {
          restarts++;
          // A replacement may take the crashing message before it reports READY: it exits again.
          await r.startConsumer().catch(() => undefined);
        }
      }
    };
    const supervisor = supervise();
    const crashSeq = 100;
    await r.load({
      count: 400,
      ratePerSec: 100,
      body: (seq) => ({ seq, crash: seq === crashSeq }),
    });
    const crashId = r.ledger
      .rows()
      .flatMap((row) => (row.kind === 'sent' && row.seq === crashSeq ? [row.id] : []))[0];
    r.expectDead(crashId);
    // Settled: the crash message is in the dead-letter queue, and so is every good message not
    // handled (one unacked on a consumer each time it crashed counts its deliveries too).
    let settled = true;
    try {
      await waitFor(
        async () => {
          const handled = r.ledger.handledIds();
          const missing = r.ledger
            .rows()
            .filter(
              (row) => row.kind === 'confirmed' && row.id !== crashId && !handled.has(row.id),
            );
          const dead = await r.depth(r.deadLetterQueue);
          return dead >= 1 && missing.length <= dead - 1;
        },
        { timeoutMs: 60_000, intervalMs: 250, message: 'crash message dead-lettered' },
      ).catch(() => (settled = false));
    } finally {
      supervising = false;
      stopSupervisor.open();
      await supervisor;
    }
    const report = await r.finish();
    const deliveries = r.ledger
      .childRows()
      .filter((row) => row.kind === 'attempt' && row.id === crashId);
    const deadIds = r.ledger.rows().flatMap((row) => (row.kind === 'dead' ? [row.id] : []));
    const collateral = deadIds.filter((id) => id !== crashId).length;
    recordResult('F9 crash-loop poison', report, {
      restarts,
      poisonDeliveries: deliveries.length,
      collateralDeadLetters: collateral,
    });
    expect(settled).toBe(true);
    expect(deadIds).toContain(crashId);
    // Every dead letter here is the broker's (a delivery limit), never a message silently dropped.
    expect(report.deadBy).toEqual({ 'broker:delivery_limit': report.dead });
    expect(deliveries.length).toBeLessThanOrEqual(4);
    // Collateral: a good message unacked on the consumer at each crash shares the crash's deliveries.
    expect(collateral).toBeLessThanOrEqual(2 * 10);
    expectPassBar(report, { dead: report.dead, duplicatedAtMost: restarts * 10 });
  });
});
