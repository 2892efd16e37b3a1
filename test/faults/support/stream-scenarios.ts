/**
 * The scenarios that Redis Streams and NATS JetStream share, written once: each takes a `Rig` (the
 * private server, the chaos proxy in front of it, and a way to start a `StreamRun` on it), injects
 * its fault under load, records its verdict line (results.ts) and holds the pass bar.
 *
 * | scenario               | fault                                                       | promise                                   |
 * | ---------------------- | ----------------------------------------------------------- | ----------------------------------------- |
 * | `tcpCuts`              | 5 RSTs of every proxied connection, 1,000 msgs at 200/s     | bar; duplicates within the unacked window |
 * | `blackHole`            | 3 s of nothing forwarded, 1,000 msgs at 200/s               | bar; every publish settles                |
 * | `serverKill`           | SIGKILL of the server at 500 of 1,500 (200/s), restarted     | 0 confirmed lost; bar                     |
 * | `consumerKills`        | SIGKILL of a consumer mid-handler at 150, 350, 550 of 800   | its deliveries redelivered; bar           |
 * | `badInput`             | raw writes among 300 good messages: not JSON, `__proto__`, `constructor.prototype`, a gzip bomb (64 MiB of zeros), a 512 KiB body (consumer maxBodyBytes 256 KiB), and a good body with spoofed `x-messaging-*` headers | the five bad ones dead-lettered once (`malformed`), never handled; the spoofed one handled once as attempt 1; consumers alive, prototype intact |
 * | `retriesAcrossRestart` | half the messages fail once (retry in 300 ms), a fifth are published with a 2 s delay; server SIGKILL + restart at 300 of 600 | every one handled, retried ones on attempt 2; bar |
 */
import { ChaosProxy } from './chaos-proxy';
import type { LedgerRow } from './ledger';
import { COPIES_PER_FAULT, expectPassBar } from './pass-bar';
import type { PrivateServer } from './private-server';
import { recordResult } from './results';
import { gzipSync } from 'node:zlib';
import type { StreamBackendSpec } from './stream-backends';
import { StreamRun } from './stream-run';

export interface Rig {
  /** `R` or `N`: the first letter of the scenario ids. */
  readonly id: 'R' | 'N';
  readonly server: PrivateServer;
  readonly proxy: ChaosProxy;
  /**
   * Messages a server SIGKILL may bring back to be handled again, whether counted as redeliveries or
   * as second copies (default: the bounds of one connection-level fault). JetStream keeps its
   * consumers' ack state in memory between flushes, so a kill can bring back messages already
   * acknowledged, up to everything delivered before the kill; since the runner marks a rolled-back
   * delivery redelivered, most show as redeliveries, the rest (count reset too) as copies.
   */
  readonly serverKillRepeatsAtMost?: number;
  start(
    scenario: string,
    extra?: { viaProxy?: boolean; handlerMs?: [number, number]; maxBodyBytes?: number },
  ): Promise<StreamRun>;
}

/** What {@link useRig} needs of a broker. */
export interface RigOptions {
  readonly id: Rig['id'];
  readonly serverKillRepeatsAtMost?: number;
  /** Starts the spec file's private server. */
  startServer(): Promise<PrivateServer>;
  /** The backend of every party, on the server at `url`. */
  backend(url: string): StreamBackendSpec;
  /** URL scheme of the server, for the chaos proxy's URL. */
  readonly scheme: 'redis' | 'nats';
}

/**
 * The rig of a spec file: registers the hooks that start its private server and the chaos proxy in
 * front of it (once), restore the proxy and close the run after each scenario, and stop both at the
 * end. Each run has two consumers, 5 to 50 ms handlers and retries in 300 ms unless said.
 */
export function useRig(options: RigOptions): Rig {
  let server: PrivateServer;
  let proxy: ChaosProxy;
  let run: StreamRun | undefined;

  beforeAll(async () => {
    server = await options.startServer();
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

  return {
    id: options.id,
    serverKillRepeatsAtMost: options.serverKillRepeatsAtMost,
    get server() {
      return server;
    },
    get proxy() {
      return proxy;
    },
    start: (scenario, extra = {}) =>
      StreamRun.start({
        scenario,
        backend: options.backend(server.url),
        serviceUrl: extra.viaProxy ? `${options.scheme}://127.0.0.1:${proxy.port}` : undefined,
        consumers: 2,
        consumer: {
          handlerMs: extra.handlerMs ?? [5, 50],
          retryDelayMs: 300,
          maxBodyBytes: extra.maxBodyBytes,
        },
      }).then((r) => (run = r)),
  };
}

/**
 * Time from a fault (`since`, epoch ms) to the first confirm of a publish sent after it: how long
 * publishing was stopped (publishes in flight at the fault are not counted); with `kind`
 * `handled`, to the first handling of a message sent after it. Undefined when there is none.
 */
export function resumedMs(
  rows: readonly LedgerRow[],
  since: number,
  kind: 'confirmed' | 'handled' = 'confirmed',
): number | undefined {
  const sentAfter = new Set<string>();
  for (const row of rows) if (row.kind === 'sent' && row.at >= since) sentAfter.add(row.id);
  let first: number | undefined;
  for (const row of rows) {
    if (row.kind === kind && sentAfter.has(row.id) && (first === undefined || row.at < first)) {
      first = row.at;
    }
  }
  return first === undefined ? undefined : first - since;
}

const hold = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function tcpCuts(rig: Rig): Promise<void> {
  const r = await rig.start(`${rig.id}1`.toLowerCase(), { viaProxy: true });
  const loading = r.load({ count: 1000, ratePerSec: 200 });
  for (const at of [150, 300, 450, 600, 750]) {
    await r.waitSent(at);
    rig.proxy.cut();
  }
  await loading;
  const settled = await r.settle(60_000);
  const report = await r.finish();
  recordResult(`${rig.id}1 ${r.kind} TCP cut x5`, report, { connections: rig.proxy.accepted });
  expect({ settled, held: r.heldAtEnd }).toEqual({ settled: true, held: {} });
  expectPassBar(report, { duplicatedAtMost: 5 * 2 * 10, copiesAtMost: 5 * COPIES_PER_FAULT });
}

export async function blackHole(rig: Rig): Promise<void> {
  const r = await rig.start(`${rig.id}2`.toLowerCase(), { viaProxy: true });
  const loading = r.load({ count: 1000, ratePerSec: 200, settleMs: 40_000 });
  await r.waitSent(300);
  const holedAt = Date.now();
  rig.proxy.blackhole();
  await hold(3_000); // the fault itself: a partition of 3 s
  rig.proxy.restore();
  await loading;
  const settled = await r.settle(60_000);
  const report = await r.finish();
  recordResult(`${rig.id}2 ${r.kind} black hole 3 s`, report, {
    resumedMs: resumedMs(r.ledger.rows(), holedAt),
  });
  expect({ settled, held: r.heldAtEnd }).toEqual({ settled: true, held: {} });
  expectPassBar(report, { duplicatedAtMost: 2 * 10, copiesAtMost: COPIES_PER_FAULT });
}

export async function serverKill(rig: Rig): Promise<void> {
  const r = await rig.start(`${rig.id}3`.toLowerCase());
  const loading = r.load({ count: 1500, ratePerSec: 200, settleMs: 40_000 });
  await r.waitSent(500);
  const killedAt = Date.now();
  await rig.server.crash();
  await rig.server.start();
  const restartMs = Date.now() - killedAt;
  await loading;
  const settled = await r.settle(60_000);
  const report = await r.finish();
  recordResult(`${rig.id}3 ${r.kind} SIGKILL + restart`, report, {
    restartMs,
    resumedMs: resumedMs(r.ledger.rows(), killedAt),
  });
  expect({ settled, held: r.heldAtEnd }).toEqual({ settled: true, held: {} });
  // A publish in flight at the kill may time out (its outcome unknown, reported): never a confirmed one lost.
  expectPassBar(report, {
    rejected: report.rejected,
    duplicatedAtMost: rig.serverKillRepeatsAtMost ?? 2 * 10,
    copiesAtMost: rig.serverKillRepeatsAtMost ?? COPIES_PER_FAULT,
  });
  expect(report.rejected).toBeLessThanOrEqual(COPIES_PER_FAULT);
  // The kill was seen: the producer lost its connection and came back.
  expect(r.producerStatuses.map((s) => s.status)).toContain('reconnecting');
}

export async function consumerKills(rig: Rig): Promise<void> {
  const r = await rig.start(`${rig.id}4`.toLowerCase(), { handlerMs: [200, 200] });
  const loading = r.load({ count: 800, ratePerSec: 80 });
  let kills = 0;
  for (const at of [150, 350, 550]) {
    await r.waitSent(at);
    const live = r.live;
    live[Math.floor(Math.random() * live.length)].signal('SIGKILL');
    kills++;
    await r.startConsumer();
  }
  await loading;
  const settled = await r.settle(90_000);
  const report = await r.finish();
  const redelivered = r.ledger
    .childRows()
    .filter((row) => row.kind === 'handled' && row.redelivered).length;
  recordResult(`${rig.id}4 ${r.kind} consumer SIGKILL x3`, report, { kills, redelivered });
  expect({ settled, held: r.heldAtEnd }).toEqual({ settled: true, held: {} });
  // A killed consumer held at most its 10 deliveries; each comes back marked redelivered (0 copies).
  expectPassBar(report, { duplicatedAtMost: 3 * 10 });
  expect(redelivered).toBeGreaterThan(0); // the killed consumers' deliveries came back
}

export async function retriesAcrossRestart(rig: Rig): Promise<void> {
  const r = await rig.start(`${rig.id}5`.toLowerCase());
  const failOnce = (seq: number) => seq % 2 === 0;
  const delayed = (seq: number) => seq % 5 === 1;
  const loading = r.load({
    count: 600,
    ratePerSec: 150,
    settleMs: 40_000,
    body: (seq) => (failOnce(seq) ? { seq, failUntil: 2 } : { seq }),
    delayMs: (seq) => (delayed(seq) ? 2_000 : undefined),
  });
  await r.waitSent(300);
  const killedAt = Date.now();
  await rig.server.crash();
  await rig.server.start();
  await loading;
  const settled = await r.settle(60_000);
  const report = await r.finish();
  recordResult(`${rig.id}5 ${r.kind} retries + delays across a restart`, report, {
    resumedMs: resumedMs(r.ledger.rows(), killedAt),
  });
  expect({ settled, held: r.heldAtEnd }).toEqual({ settled: true, held: {} });
  expectPassBar(report, {
    rejected: report.rejected,
    duplicatedAtMost: 2 * 10,
    copiesAtMost: COPIES_PER_FAULT,
  });
  expect(report.rejected).toBeLessThanOrEqual(COPIES_PER_FAULT);
  // Every confirmed message that had to fail once was handled on a retry (attempt 2 or later), and
  // no delayed message was handled before its delay.
  const sent = new Map<string, { seq: number; at: number }>();
  for (const row of r.ledger.rows()) if (row.kind === 'sent') sent.set(row.id, row);
  const early: number[] = [];
  const notRetried: number[] = [];
  for (const row of r.ledger.childRows()) {
    if (row.kind !== 'handled') continue;
    const { seq, at } = sent.get(row.id)!;
    if (failOnce(seq) && row.attempt < 2) notRetried.push(seq);
    if (delayed(seq) && row.at < at + 2_000) early.push(seq);
  }
  expect({ notRetried, early }).toEqual({ notRetried: [], early: [] });
}

/** One message written past the library (a raw client): its id, body, encoding and headers. */
export interface RawMessage {
  id: string;
  body: Buffer;
  contentEncoding?: string;
  headers: Record<string, string>;
}

export async function badInput(
  rig: Rig,
  writeRaw: (r: StreamRun, message: RawMessage) => Promise<void>,
): Promise<void> {
  const r = await rig.start(`${rig.id}6`.toLowerCase(), { maxBodyBytes: 256 * 1024 });
  const bad: Array<[string, Buffer, string?]> = [
    ['not json', Buffer.from('not json{')],
    ['__proto__', Buffer.from('{"__proto__":{"p":1}}')],
    ['constructor.prototype', Buffer.from('{"constructor":{"prototype":{"p":1}}}')],
    ['gzip bomb', gzipSync(Buffer.alloc(64 * 1024 * 1024)), 'gzip'],
    ['512 KiB body', Buffer.from(JSON.stringify({ pad: 'x'.repeat(512 * 1024) }))],
  ];
  const loading = r.load({ count: 300, ratePerSec: 150 });
  await r.waitSent(100);
  const badIds = new Map<string, string>();
  let seq = 1_000;
  for (const [name, body, contentEncoding] of bad) {
    const id = `${name.replace(/\W+/g, '-')}-${seq}`;
    await writeRaw(r, { id, body, contentEncoding, headers: {} });
    r.recordForeign(id, seq++, { dead: true });
    badIds.set(id, name);
  }
  const spoofed = `spoofed-${seq}`;
  await writeRaw(r, {
    id: spoofed,
    body: Buffer.from(JSON.stringify({ seq })),
    headers: { 'x-messaging-attempt': '99', 'x-messaging-dead-letter-reason': 'spoofed' },
  });
  r.recordForeign(spoofed, seq, { dead: false });
  await loading;
  const settled = await r.settle(60_000);
  const alive = r.live.length;
  const report = await r.finish();
  recordResult(`${rig.id}6 ${r.kind} bad input`, report, { alive });
  expect({ settled, held: r.heldAtEnd }).toEqual({ settled: true, held: {} });
  expectPassBar(report, { dead: bad.length });
  expect(report.deadBy).toEqual({ malformed: bad.length });
  const handled = r.ledger
    .childRows()
    .flatMap((row) => (row.kind === 'handled' ? [{ id: row.id, attempt: row.attempt }] : []));
  expect(handled.filter((row) => badIds.has(row.id))).toEqual([]);
  expect(handled.filter((row) => row.id === spoofed).map((row) => row.attempt)).toEqual([1]);
  expect(alive).toBe(2);
  expect(({} as Record<string, unknown>).p).toBeUndefined();
}
