/**
 * A master of a private Redis Cluster (3 masters + 3 replicas, support/redis-cluster.ts) SIGKILLed
 * under load: its replica takes over, and the run (the fault suite's StreamRun: ledger, two consumer
 * processes, checker, pass bar) says what became of every message. The killed node is started again
 * once the failover is done, and comes back as the new master's replica (as a supervisor would do).
 *
 * | id  | producer's option                              | fault                                          | promise |
 * | --- | ---------------------------------------------- | ---------------------------------------------- | ------- |
 * | RC0 | `waitForReplicas: { replicas: 1, timeoutMs: 1000 }` against none | none: the cost of the option, 4,000 publishes 500 in flight and 300 one at a time, each way 3 times (alternating) | one `WAIT` per batch, not per message (counted on the master); rates and latencies recorded |
 * | RC1 | `waitForReplicas: { replicas: 1, timeoutMs: 5000 }` | SIGKILL of the prefix's master at 500 of 1,500 (200/s) | 0 confirmed lost; the rest of the bar; rejections only `PublishTimeoutError`, only while the slot had no replica; failover and resume times recorded |
 * | RC2 | none (a publish resolves on the master's reply) | the same                                       | measured, not promised: confirmed messages the replica lacked are lost (recorded) |
 * | RC3 | none; two instances of a route serve volatile requests | SIGKILL of the prefix's master, no load | a request answered before; after the failover both instances counted on the new master (their route channel followed the slot) and a request answered |
 *
 * From the kill until the old master is back as a replica (5 to 9 s here) the slot's master has no
 * replica that acknowledges: a `WAIT 1` answers 0 after `timeoutMs` (5 s), and the publishes of that
 * batch reject with `PublishTimeoutError` (kept or not: unknown); the later ones are held, not lost.
 */
import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { RedisStreamsBackend } from '@app/messaging/redis';
import { waitFor } from '@app/messaging/testing';
import {
  answer,
  routeSpec,
  textMessage,
} from '../../libs/messaging/src/backends/redis/redis-spec.fixture';
import { PrivateRedisCluster } from '../faults/support/redis-cluster';
import { COPIES_PER_FAULT, expectPassBar } from '../faults/support/pass-bar';
import { recordResult } from '../faults/support/results';
import { resumedMs } from '../faults/support/stream-scenarios';
import { StreamRun } from '../faults/support/stream-run';

describe('faults: Redis Cluster failover (private 3+3 cluster)', () => {
  let cluster: PrivateRedisCluster | undefined;
  let run: StreamRun | undefined;

  beforeAll(async () => {
    cluster = await PrivateRedisCluster.start();
  }, 120_000);
  afterEach(async () => {
    await run?.close();
    run = undefined;
  });
  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  it('RC0 the cost of waitForReplicas: one WAIT per batch of publishes', async () => {
    const c = cluster!;
    Logger.overrideLogger(['error']);
    const prefix = `{rc0-${randomUUID().slice(0, 8)}}`;
    const master = await c.masterOf(await c.slotOf(prefix));
    const message = (i: number) => ({
      queue: 'cost.queue',
      body: Buffer.alloc(256, i % 256),
      headers: {},
      messageId: randomUUID(),
      contentType: 'application/octet-stream',
      timestamp: Date.now(),
    });
    /** Publishes `count` messages `inFlight` at a time; msgs/s and the p50 of one publish. */
    const measure = async (wait: boolean, count: number, inFlight: number) => {
      const backend = new RedisStreamsBackend({
        cluster: { nodes: c.urls },
        prefix,
        ...(wait && { waitForReplicas: { replicas: 1, timeoutMs: 1_000 } }),
      });
      await backend.connect();
      try {
        const waitsBefore = await c.commandCalls(master, 'WAIT');
        const latencies: number[] = [];
        const started = performance.now();
        for (let sent = 0; sent < count; sent += inFlight) {
          await Promise.all(
            Array.from({ length: Math.min(inFlight, count - sent) }, async (_, i) => {
              const at = performance.now();
              await backend.publish(message(sent + i), { mandatory: false });
              latencies.push(performance.now() - at);
            }),
          );
        }
        const seconds = (performance.now() - started) / 1000;
        latencies.sort((a, b) => a - b);
        return {
          perSec: Math.round(count / seconds),
          p50Ms: Number(latencies[Math.floor(latencies.length / 2)].toFixed(3)),
          waits: (await c.commandCalls(master, 'WAIT')) - waitsBefore,
        };
      } finally {
        await backend.close();
      }
    };
    await measure(false, 2_000, 500); // warm-up (JIT, connections), not recorded
    const rows: Record<string, unknown>[] = [];
    for (const round of [1, 2, 3]) {
      for (const wait of round % 2 ? [false, true] : [true, false]) {
        rows.push({ round, wait, batch: await measure(wait, 4_000, 500) });
        rows.push({ round, wait, oneAtATime: await measure(wait, 300, 1) });
      }
    }
    process.stdout.write(`[cluster] RC0 waitForReplicas cost: ${JSON.stringify(rows)}\n`);
    for (const row of rows) {
      const m = (row.batch ?? row.oneAtATime) as { waits: number };
      if (!row.wait) expect(m.waits).toBe(0);
      // One WAIT per batch: 500 publishes in flight share a few; one at a time, one each.
      else if (row.batch) expect(m.waits).toBeLessThan(4_000 / 10);
      else expect(m.waits).toBeLessThanOrEqual(300);
    }
  });

  /** Load, SIGKILL of the master of the run's slot at 500 sent, failover, old master back. */
  async function masterKill(scenario: string, wait: boolean) {
    const c = cluster!;
    const r = await StreamRun.start({
      scenario,
      backend: {
        kind: 'redis',
        options: {
          cluster: { nodes: c.urls },
          claimIdleMs: 2_000,
          ...(wait && { waitForReplicas: { replicas: 1, timeoutMs: 5_000 } }),
        },
      },
      consumers: 2,
      consumer: { handlerMs: [5, 50], retryDelayMs: 300 },
    });
    run = r;
    const slot = await c.slotOf(`{${r.prefix}}`);
    const loading = r.load({ count: 1500, ratePerSec: 200, settleMs: 40_000 });
    await r.waitSent(500);
    const master = await c.masterOf(slot);
    const killedAt = Date.now();
    await master.crash();
    await c.waitForFailover(slot, master);
    const failoverMs = Date.now() - killedAt;
    await master.start(); // back as the new master's replica
    await c.waitHealthy(30_000);
    const backMs = Date.now() - killedAt;
    await loading;
    // Without WAIT a lost message is never handled: the settle gives up sooner.
    const settled = await r.settle(wait ? 60_000 : 20_000);
    const report = await r.finish();
    const extra = {
      slot,
      failoverMs,
      replicaBackMs: backMs,
      resumedMs: resumedMs(r.ledger.rows(), killedAt),
    };
    return { r, report, settled, extra };
  }

  type Outcome = Awaited<ReturnType<typeof masterKill>>;

  /** The promise of waitForReplicas: 0 confirmed lost; rejections typed, only while no replica had it. */
  function expectNoConfirmedLost({ r, report, settled, extra }: Outcome): void {
    expect({ settled, held: r.heldAtEnd }).toEqual({ settled: true, held: {} });
    // A publish whose WAIT could not be satisfied rejects, typed (its outcome unknown): never a
    // confirmed one lost. Only publishes sent while the slot had no replica (from the kill until the
    // old master is back as a replica, at 200/s) may reject.
    expectPassBar(report, {
      rejected: report.rejected,
      duplicatedAtMost: 2 * 10,
      copiesAtMost: COPIES_PER_FAULT,
    });
    expect(Object.keys(report.rejectedBy).filter((k) => k !== 'PublishTimeoutError')).toEqual([]);
    expect(report.rejected).toBeLessThanOrEqual(Math.ceil((200 * extra.replicaBackMs) / 1000));
  }

  /** Without waitForReplicas nothing is promised of a failover: what may not go wrong all the same. */
  function expectNothingElseWrong({ report }: Outcome): void {
    expect({
      unexpected: report.unexpected.length,
      crashes: report.crashes,
      rejected: report.rejected,
    }).toEqual({ unexpected: 0, crashes: [], rejected: 0 });
  }

  it('RC1 master SIGKILL under load with waitForReplicas: 0 confirmed lost', async () => {
    const outcome = await masterKill('rc1', true);
    recordResult(
      'RC1 redis cluster master SIGKILL, waitForReplicas 1',
      outcome.report,
      outcome.extra,
    );
    expectNoConfirmedLost(outcome);
  });

  it('RC2 master SIGKILL under load without waitForReplicas: losses measured', async () => {
    const outcome = await masterKill('rc2', false);
    recordResult('RC2 redis cluster master SIGKILL, no waitForReplicas', outcome.report, {
      ...outcome.extra,
      confirmedLost: outcome.report.lost.length,
    });
    expectNothingElseWrong(outcome);
  });

  it('RC3 volatile requests after a failover: the route channels follow the slot', async () => {
    const c = cluster!;
    Logger.overrideLogger(['error']);
    const prefix = `{rc3-${randomUUID().slice(0, 8)}}`;
    const options = { cluster: { nodes: c.urls }, prefix, blockMs: 200 };
    const backends = [0, 1, 2].map(() => new RedisStreamsBackend(options));
    try {
      await Promise.all(backends.map((b) => b.connect()));
      const [client, ...servers] = backends;
      const served: number[] = [];
      for (const [i, server] of servers.entries()) {
        await server.subscribe(routeSpec('rc3', ['rc3.ask']), async (d) => {
          served.push(i);
          return answer(d, `from ${i}`);
        });
      }
      const ask = () =>
        client.request(textMessage({ topic: 'rc3.ask' }, 'q'), {
          timeoutMs: 2_000,
          durable: false,
        });
      await expect(ask()).resolves.toBeDefined();
      const slot = await c.slotOf(prefix);
      const channel = `${prefix}:rq:0:rc3.route`;
      const master = await c.masterOf(slot);
      expect(await c.shardSubscribers(master, channel)).toBe(2);
      const killedAt = Date.now();
      await master.crash();
      await c.waitForFailover(slot, master);
      const failoverMs = Date.now() - killedAt;
      // Both instances subscribe again on the new master (within a second of the slot's move).
      const promoted = await c.masterOf(slot);
      await waitFor(async () => (await c.shardSubscribers(promoted, channel)) === 2, {
        timeoutMs: 10_000,
        intervalMs: 100,
        message: 'both instances of the route counted on the new master',
      });
      const rehomedMs = Date.now() - killedAt;
      served.length = 0;
      const reply = await ask();
      expect(reply.body.toString()).toMatch(/^from [01]$/);
      expect(served).toHaveLength(1);
      process.stdout.write(
        `[cluster] RC3 volatile requests after a failover: ${JSON.stringify({ slot, failoverMs, rehomedMs })}\n`,
      );
      await master.start(); // back as the new master's replica
      await c.waitHealthy(30_000);
    } finally {
      await Promise.all(backends.map((b) => b.close()));
    }
  });
});
