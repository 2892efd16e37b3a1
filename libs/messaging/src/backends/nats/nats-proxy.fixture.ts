import { createServer, type Server, Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** A proxy of {@link tcpProxy}: its port, and how a test cuts what goes through it. */
export interface TcpProxy {
  readonly port: number;
  /** Drops every connection through it now (the client reconnects through it). */
  cut(): void;
  /** Drops its connections and stops listening. */
  close(): void;
  /**
   * Once the client sends `text`, the server's answers to that connection are held back, and 50 ms
   * later the connection is cut: a round trip begun then never completes.
   */
  holdAfter(text: string): void;
  /**
   * Black-holes the connections through it now: from then on what either side sends is dropped,
   * and neither is told (no close, no error), as a dead network link does. New connections pass.
   */
  blackhole(): void;
}

/** A TCP proxy to the local NATS server whose connections the test can cut. */
export async function tcpProxy(upstreamPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let trigger: string | undefined;
  /** Black-holes of the connections open now. */
  const holes = new Set<() => void>();
  const server: Server = createServer((client) => {
    const upstream = new Socket();
    upstream.connect(upstreamPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    let held = false;
    let holed = false;
    const hole = () => (holed = true);
    holes.add(hole);
    client.on('close', () => holes.delete(hole));
    client.on('data', (chunk: Buffer) => {
      if (holed) return;
      upstream.write(chunk);
      if (trigger && !held && chunk.toString('latin1').includes(trigger)) {
        held = true;
        trigger = undefined;
        setTimeout(() => {
          client.destroy();
          upstream.destroy();
        }, 50);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!held && !holed) client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
    holdAfter: (text: string) => {
      trigger = text;
    },
    blackhole: () => {
      for (const hole of holes) hole();
      holes.clear();
    },
  };
}
