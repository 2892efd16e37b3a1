/**
 * The suite's own tools, checked without a broker: the checker must flag each kind of failure (a
 * checker that cannot fail proves nothing), and the chaos proxy must keep byte order through a
 * delay, reset both legs on a cut and hold bytes in a black hole.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { waitFor } from '@app/messaging/testing';
import { check } from './support/checker';
import { ChaosProxy } from './support/chaos-proxy';
import type { LedgerRow } from './support/ledger';

const at = 0;
const handled = (id: string, attempt = 1): LedgerRow => ({
  kind: 'handled',
  id,
  attempt,
  redelivered: attempt > 1,
  pid: 1,
  at,
});

describe('faults support: checker', () => {
  it('reports lost, duplicated, unexpected, unsettled and dead-lettered-twice messages', () => {
    const rows: LedgerRow[] = [
      ...['a', 'b', 'b2', 'c', 'd', 'e', 'f'].map((id, seq): LedgerRow => ({
        kind: 'sent',
        id,
        seq,
        at,
      })),
      ...['a', 'b', 'b2', 'c', 'e'].map((id): LedgerRow => ({ kind: 'confirmed', id, at })),
      { kind: 'rejected', id: 'f', reason: 'PublishTimeoutError', error: 'timeout', at },
      handled('a'),
      handled('a', 2),
      handled('b2'),
      handled('b2'),
      handled('x'),
      {
        kind: 'dead',
        id: 'e',
        reason: 'max-attempts',
        errorClass: 'Error',
        attempts: 3,
        queue: 'q',
      },
      {
        kind: 'dead',
        id: 'e',
        reason: 'max-attempts',
        errorClass: 'Error',
        attempts: 3,
        queue: 'q',
      },
      { kind: 'leftover', id: 'c', queue: 'q' },
    ];
    const report = check(rows);
    expect(report).toMatchObject({
      sent: 7,
      confirmed: 5,
      rejected: 1,
      rejectedBy: { PublishTimeoutError: 1 },
      lost: ['b'],
      duplicated: ['a', 'b2'],
      copies: ['b2'],
      unexpected: ['x'],
      unsettled: ['d'],
      deadTwice: ['e'],
      leftover: 1,
    });
  });

  it('passes a clean run', () => {
    const report = check([
      { kind: 'sent', id: 'a', seq: 0, at },
      { kind: 'confirmed', id: 'a', at },
      handled('a'),
    ]);
    expect([report.lost, report.duplicated, report.unexpected, report.unsettled]).toEqual([
      [],
      [],
      [],
      [],
    ]);
  });
});

describe('faults support: chaos proxy', () => {
  let echo: Server;
  let proxy: ChaosProxy;
  let client: Socket | undefined;

  beforeEach(async () => {
    echo = createServer((s) => {
      s.on('error', () => undefined);
      s.pipe(s);
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', () => resolve()));
    proxy = new ChaosProxy((echo.address() as { port: number }).port);
    await proxy.listen();
  });
  afterEach(async () => {
    client?.destroy();
    await proxy.close();
    await new Promise((resolve) => echo.close(resolve));
  });

  const open = async (): Promise<{ socket: Socket; got: () => string; closed: () => boolean }> => {
    const socket = connect({ port: proxy.port, host: '127.0.0.1' });
    client = socket;
    let data = '';
    let closed = false;
    socket.on('data', (d) => (data += d.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => (closed = true));
    await new Promise((resolve) => socket.once('connect', resolve));
    return { socket, got: () => data, closed: () => closed };
  };

  it('keeps byte order when a delay starts and ends mid-stream', async () => {
    const c = await open();
    let sent = '';
    for (let i = 0; i < 60; i++) {
      if (i === 20) proxy.delay(30);
      if (i === 40) proxy.restore();
      sent += `${i},`;
      c.socket.write(`${i},`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(() => c.got() === sent, { timeoutMs: 5_000 });
  });

  it('holds bytes in a black hole and delivers them on restore; a cut closes the client', async () => {
    const c = await open();
    proxy.blackhole();
    c.socket.write('held');
    await new Promise((resolve) => setTimeout(resolve, 200)); // nothing may arrive meanwhile
    expect(c.got()).toBe('');
    proxy.restore();
    await waitFor(() => c.got() === 'held');
    proxy.cut();
    await waitFor(() => c.closed());
    expect(proxy.open).toBe(0);
  });
});
