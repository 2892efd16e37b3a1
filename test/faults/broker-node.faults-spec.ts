/**
 * Broker-level faults on a PRIVATE RabbitMQ node started for this file (support/broker.ts
 * `startRabbitNode`: own HOME, node name, ports and dirs; `max_message_size` 1 MiB), stopped by its
 * PID at the end. The shared broker is never touched.
 *
 * | id   | fault                                                            | pass bar                                  |
 * | ---- | ---------------------------------------------------------------- | ----------------------------------------- |
 * | F3   | `stop_app`, 5 s, `start_app` under load                          | bar (a publish may time out, reported);   |
 * |      |                                                                  | consumers back; queue contents intact     |
 * | F17  | memory alarm (`set_vm_memory_high_watermark 0.0001`) for 5 s     | publishes held, not lost; consumers keep  |
 * |      | under load, then 0.4                                             | consuming; bar; `blocked` in health       |
 * | F13b | a 2 MiB body through a producer whose maxBodyBytes allows it,   | the 406 rejects that publish; the others  |
 * |      | to a broker whose max_message_size is 1 MiB, among 300 others    | in flight settle; bar                     |
 * | F4   | SIGKILL of the node's VM under load, then a restart on its data  | every confirmed message survives and is   |
 * |      | (last: the node is a new process afterwards)                     | handled; an unconfirmed one is rejected   |
 * |      |                                                                  | (reported), never left pending            |
 */
import { waitFor } from '@app/messaging/testing';
import { freePort, type RabbitNode, startRabbitNode } from './support/broker';
import { FaultRun } from './support/fault-run';
import { COPIES_PER_FAULT, expectPassBar } from './support/pass-bar';
import { recordResult } from './support/results';

describe('faults: broker-level (private RabbitMQ node)', () => {
  let node: RabbitNode;
  let run: FaultRun | undefined;

  beforeAll(async () => {
    const [port, distPort] = [await freePort(), await freePort()];
    node = await startRabbitNode({
      name: `faults-${process.pid}`,
      port,
      distPort,
      config: { max_message_size: 1048576 },
    });
  }, 180_000);
  afterEach(async () => {
    await run?.close();
    run = undefined;
  });
  afterAll(() => node?.stop(), 120_000);

  const start = (scenario: string, extra: Partial<Parameters<typeof FaultRun.start>[0]> = {}) =>
    FaultRun.start({
      scenario,
      url: node.url,
      directUrl: node.url,
      consumers: 2,
      ...extra,
    }).then((r) => (run = r));

  it('F3 stop_app for 5 s then start_app under load: nothing lost, consumers back', async () => {
    const r = await start('f3', { producer: { publishTimeoutMs: 15_000 } });
    const loading = r.load({ count: 1000, ratePerSec: 100, settleMs: 40_000 });
    await r.waitSent(300);
    await node.ctl(['stop_app']);
    const stoppedAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 5_000)); // the outage
    await node.ctl(['start_app']);
    const startedAt = Date.now();
    await waitFor(async () => (await r.consumerCount()) === 2, {
      timeoutMs: 20_000,
      intervalMs: 200,
      message: 'both consumers back after start_app',
    });
    const backMs = Date.now() - startedAt;
    await loading;
    expect(await r.settle(60_000)).toBe(true);
    const report = await r.finish();
    recordResult('F3 stop_app/start_app', report, {
      outageMs: startedAt - stoppedAt,
      consumersBackMs: backMs,
    });
    expectPassBar(report, { duplicatedAtMost: 2 * 10, copiesAtMost: COPIES_PER_FAULT });
  });

  it('F17 memory alarm for 5 s under load: publishes held then confirmed, consumers keep consuming', async () => {
    // Consumers slower than the load (about 50/s against 150/s): a backlog to consume during the alarm.
    const r = await start('f17', { consumer: { handlerMs: [50, 100], concurrency: 2 } });
    const loading = r.load({ count: 600, ratePerSec: 150, settleMs: 40_000 });
    await r.waitSent(300);
    await node.ctl(['set_vm_memory_high_watermark', '0.0001']);
    const alarmAt = Date.now();
    const handledAtAlarm = r.ledger.handledIds().size;
    await new Promise((resolve) => setTimeout(resolve, 5_000)); // the alarm
    const health = r.health();
    const handledDuringAlarm = r.ledger.handledIds().size - handledAtAlarm;
    const clearedAt = Date.now();
    await node.ctl(['set_vm_memory_high_watermark', '0.4']);
    await loading;
    expect(await r.settle(60_000)).toBe(true);
    const report = await r.finish();
    // Confirms in the alarm's last 3 s: the broker withholds them while publishing is blocked.
    const confirmedDuringAlarm = r.ledger
      .rows()
      .filter(
        (row) => row.kind === 'confirmed' && row.at > alarmAt + 2_000 && row.at < clearedAt,
      ).length;
    recordResult('F17 memory alarm 5 s', report, {
      handledDuringAlarm,
      confirmedDuringAlarm,
      health,
    });
    expectPassBar(report);
    expect(confirmedDuringAlarm).toBe(0);
    expect(handledDuringAlarm).toBeGreaterThan(0);
    // RELIABILITY.md R6: a blocked publisher is visible in health, not only in a log line.
    expect(health).toEqual(expect.objectContaining({ blocked: true }));
  });

  it('F13b a 2 MiB publish over the broker max_message_size fails alone; the rest settle', async () => {
    const r = await start('f13b', { producerCodec: { maxBodyBytes: 4 * 1024 * 1024 } });
    const loading = r.load({ count: 300, ratePerSec: 150 });
    await r.waitSent(100);
    const big = r.publish(999_999, { seq: 999_999, pad: 'x'.repeat(2 * 1024 * 1024) });
    await loading;
    await big;
    expect(await r.settle(30_000)).toBe(true);
    const report = await r.finish();
    recordResult('F13b over broker max_message_size', report, { rejectedBy: report.rejectedBy });
    expect(report.rejected).toBe(1);
    expectPassBar(report, {
      rejected: 1,
      duplicatedAtMost: 2 * 10,
      copiesAtMost: COPIES_PER_FAULT,
    });
    expect(report.handled).toBe(300);
  });

  it('F4 broker crash (SIGKILL) and restart under load: every confirmed message survives', async () => {
    const r = await start('f4', { producer: { publishTimeoutMs: 30_000 } });
    const loading = r.load({ count: 800, ratePerSec: 100, settleMs: 60_000 });
    await r.waitSent(300);
    await node.crash();
    const crashedAt = Date.now();
    await node.start();
    const restartedMs = Date.now() - crashedAt;
    await waitFor(async () => (await r.consumerCount()) === 2, {
      timeoutMs: 30_000,
      intervalMs: 200,
      message: 'both consumers back after the restart',
    });
    await loading;
    expect(await r.settle(60_000)).toBe(true);
    const report = await r.finish();
    recordResult('F4 broker SIGKILL + restart', report, { restartedMs });
    // A publish whose confirm died with the broker may time out: reported to its caller, not lost.
    const otherRejections = Object.keys(report.rejectedBy).filter(
      (k) => k !== 'PublishTimeoutError',
    );
    expect(otherRejections).toEqual([]);
    expectPassBar(report, {
      rejected: report.rejectedBy.PublishTimeoutError ?? 0,
      duplicatedAtMost: 2 * 10,
      copiesAtMost: COPIES_PER_FAULT,
    });
  });
});
