/**
 * A free TCP port for a server a test starts (a private broker node, a sample service's HTTP port),
 * shared by the e2e and fault suites.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * A free TCP port, below the OS's ephemeral range and never the same twice in
 * one process. A port the OS hands out (`listen(0)`) comes from the ephemeral range, where, in the
 * seconds until the server binds it, any outgoing connection of this busy machine may take it as its
 * local port; a RabbitMQ node that then cannot bind its listener or distribution port dies at boot
 * (`rabbit_is_not_running`). Below that range only listeners take ports.
 */
export async function freePort(): Promise<number> {
  const [low] = ephemeralRange();
  const [from, to] = [Math.max(1024, low - 12_000), low - 1];
  for (let tries = 0; tries < 200; tries++) {
    const port = from + Math.floor(Math.random() * (to - from + 1));
    if (handedOut.has(port) || !(await bindable(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port in ${from}-${to} after 200 tries`);
}

const handedOut = new Set<number>();

function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low > 2048 && high >= low) return [low, high];
  } catch {
    // not Linux: the IANA range
  }
  return [49152, 65535];
}

/** Whether `port` can be listened on, on every interface (a node's distribution port binds them all). */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, () => server.close(() => resolve(true)));
  });
}
