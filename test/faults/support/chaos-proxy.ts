/**
 * A TCP chaos proxy in Node `net` (RELIABILITY.md §7.3): services under test connect to it, it
 * forwards to the broker, and the test breaks the link on demand.
 *
 * | control       | what the two legs see                                                       |
 * | ------------- | --------------------------------------------------------------------------- |
 * | `cut()`       | both sockets reset (RST) at once: an abrupt network failure                  |
 * | `blackhole()` | nothing forwarded, sockets kept open: only heartbeats can notice              |
 * | `delay(ms)`   | every chunk forwarded `ms` later, order kept: a slow link                    |
 * | `restore()`   | forwarding as normal (bytes held by a black hole are delivered, as TCP would) |
 *
 * A black hole pauses reading instead of dropping bytes: dropping would corrupt the AMQP framing,
 * whereas a real partition only delays segments until the peer gives up.
 */
import { createServer, type Server, type Socket, connect } from 'node:net';

type Mode = 'forward' | 'blackhole';

interface Pair {
  client: Socket;
  upstream: Socket;
}

export class ChaosProxy {
  private server?: Server;
  private readonly pairs = new Set<Pair>();
  private mode: Mode = 'forward';
  private delayMs = 0;
  /** Connections accepted since the start (a reconnect shows as one more). */
  accepted = 0;

  constructor(
    private readonly targetPort: number,
    private readonly targetHost = '127.0.0.1',
  ) {}

  /** Starts listening on a free loopback port and resolves with it. */
  async listen(): Promise<number> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return (server.address() as { port: number }).port;
  }

  get port(): number {
    return (this.server?.address() as { port: number }).port;
  }

  /** Open client connections through the proxy. */
  get open(): number {
    return this.pairs.size;
  }

  cut(): void {
    for (const pair of [...this.pairs]) {
      pair.client.resetAndDestroy();
      pair.upstream.resetAndDestroy();
      this.pairs.delete(pair);
    }
  }

  blackhole(): void {
    this.mode = 'blackhole';
    for (const { client, upstream } of this.pairs) {
      client.pause();
      upstream.pause();
    }
  }

  delay(ms: number): void {
    this.delayMs = ms;
  }

  restore(): void {
    this.mode = 'forward';
    this.delayMs = 0;
    for (const { client, upstream } of this.pairs) {
      client.resume();
      upstream.resume();
    }
  }

  async close(): Promise<void> {
    this.cut();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.accepted++;
    const upstream = connect({ port: this.targetPort, host: this.targetHost });
    const pair: Pair = { client, upstream };
    this.pairs.add(pair);
    const end = () => {
      if (!this.pairs.delete(pair)) return;
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.setNoDelay(true);
      socket.on('error', end);
      socket.on('close', end);
    }
    this.pipe(client, upstream);
    this.pipe(upstream, client);
    if (this.mode === 'blackhole') {
      client.pause();
      upstream.pause();
    }
  }

  /** Forwards `from` to `to`, each chunk `delayMs` later than it came, never out of order. */
  private pipe(from: Socket, to: Socket): void {
    const held: Array<{ chunk: Buffer; due: number }> = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = (): void => {
      timer = undefined;
      while (held.length > 0 && held[0].due <= Date.now()) {
        const { chunk } = held.shift()!;
        if (!to.destroyed) to.write(chunk);
      }
      if (held.length > 0) timer = setTimeout(flush, held[0].due - Date.now());
    };
    from.on('data', (chunk: Buffer) => {
      if (this.delayMs === 0 && held.length === 0) {
        if (!to.destroyed) to.write(chunk);
        return;
      }
      held.push({ chunk, due: Date.now() + this.delayMs });
      timer ??= setTimeout(flush, this.delayMs);
    });
    from.on('close', () => clearTimeout(timer));
  }
}
