/**
 * Soak (RELIABILITY.md F22): random faults under a steady load for FAULTS_SOAK_SECONDS seconds
 * (`npm run test:faults -- --soak 300`); skipped when it is not set. Every 5 to 15 s one of: an
 * operator close of the vhost's connections (F2), a TCP cut (F5), SIGKILL of a consumer with
 * restart (F7). Consumer 0 is never killed, so its memory is measured over the whole run.
 * Pass: the universal bar, consumers back to 2, and flat memory: after a third of the run for
 * warm-up, the RSS of consumer 0 and the test process's heap grow by less than 50 %.
 */
import { readFileSync } from 'node:fs';
import { waitFor } from '@app/messaging/testing';
import { createVhost, SHARED_BROKER, type Vhost, vhostUrl } from './support/broker';
import { ChaosProxy } from './support/chaos-proxy';
import { FaultRun } from './support/fault-run';
import { COPIES_PER_FAULT, expectPassBar } from './support/pass-bar';
import { recordResult } from './support/results';

const SECONDS = Number(process.env.FAULTS_SOAK_SECONDS || 0);
const RATE = 100;

const rssOf = (pid: number): number => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
};

(SECONDS > 0 ? describe : describe.skip)(`faults: soak for ${SECONDS} s`, () => {
  let vhost: Vhost;
  let proxy: ChaosProxy;
  let run: FaultRun | undefined;

  beforeAll(async () => {
    vhost = await createVhost('faults-soak');
    proxy = new ChaosProxy(SHARED_BROKER.port);
    await proxy.listen();
  }, 60_000);
  afterAll(async () => {
    await run?.close();
    await proxy?.close();
    await vhost?.remove();
  }, 60_000);

  it(
    'random faults under load: nothing lost, memory flat',
    async () => {
      const r = await FaultRun.start({
        scenario: 'soak',
        url: vhostUrl(proxy.port, vhost.name),
        directUrl: vhost.url,
        consumers: 2,
      });
      run = r;
      const steady = r.consumers[0];
      let loading = true;
      const load = r
        .load({ count: SECONDS * RATE, ratePerSec: RATE })
        .finally(() => (loading = false));
      const faults: string[] = [];
      const samples: Array<{ at: number; rss: number; heap: number }> = [];
      const started = Date.now();
      while (loading) {
        const wait = 5_000 + Math.random() * 10_000;
        const until = Date.now() + wait;
        while (loading && Date.now() < until) {
          samples.push({
            at: Date.now() - started,
            rss: rssOf(steady.pid),
            heap: process.memoryUsage().heapUsed,
          });
          await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, until - Date.now())));
        }
        if (!loading) break;
        const fault = ['close', 'cut', 'kill'][Math.floor(Math.random() * 3)];
        faults.push(fault);
        if (fault === 'close') await vhost.closeConnections('faults soak');
        if (fault === 'cut') proxy.cut();
        if (fault === 'kill') {
          const victims = r.live.filter((c) => c !== steady);
          const victim = victims[Math.floor(Math.random() * victims.length)];
          victim?.signal('SIGKILL');
          if (victim) await victim.exited;
          await r.startConsumer();
        }
      }
      await load;
      expect(await r.settle(120_000)).toBe(true);
      await waitFor(async () => (await r.consumerCount()) === 2, { timeoutMs: 15_000 });
      const report = await r.finish();
      const warm = samples.filter((s) => s.at > (SECONDS * 1000) / 3);
      const growth = (pick: (s: { rss: number; heap: number }) => number) =>
        warm.length < 2 ? 0 : pick(warm[warm.length - 1]) / pick(warm[0]) - 1;
      const rssGrowth = growth((s) => s.rss);
      const heapGrowth = growth((s) => s.heap);
      recordResult(`soak ${SECONDS} s`, report, {
        faults: faults.length,
        rssGrowthPct: Math.round(rssGrowth * 100),
        heapGrowthPct: Math.round(heapGrowth * 100),
      });
      expect(faults.length).toBeGreaterThan(0);
      expectPassBar(report, {
        duplicatedAtMost: faults.length * 2 * 10,
        copiesAtMost: faults.length * COPIES_PER_FAULT,
      });
      expect(rssGrowth).toBeLessThan(0.5);
      expect(heapGrowth).toBeLessThan(0.5);
    },
    (SECONDS + 300) * 1000,
  );
});
