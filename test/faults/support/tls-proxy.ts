/**
 * Real TLS endpoints in front of the shared broker for the TLS fault spec (no broker config change):
 *
 * - `startTlsProxy()`: a TLS-terminating proxy (`tls.createServer` with a given certificate) on a free
 *   port of 127.0.0.1 that pipes each connection, once its handshake succeeded, to 127.0.0.1:5672.
 *   It counts handshakes that failed and connections it forwarded, so a spec can prove a refused
 *   certificate stopped the client before a single AMQP byte (and so the credentials) reached the
 *   broker.
 * - `startSilentEndpoint()`: accepts TCP and never answers the TLS handshake, to prove `connect()`
 *   does not hang past `connectTimeoutMs`.
 *
 * Both close every socket they hold on `close()`.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';

export const BROKER_HOST = '127.0.0.1';
export const BROKER_PORT = 5672;

export interface TlsProxy {
  readonly port: number;
  /** Handshakes that failed (`tlsClientError`), with their errors. */
  readonly handshakeErrors: Error[];
  /** TLS connections whose handshake succeeded and that were piped to the broker. */
  forwarded(): number;
  close(): Promise<void>;
}

export interface SilentEndpoint {
  readonly port: number;
  /** TCP connections accepted so far. */
  accepted(): number;
  /** Accepted connections still open. */
  open(): number;
  close(): Promise<void>;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      const address = server.address();
      if (address === null || typeof address === 'string') reject(new Error('no port'));
      else resolve(address.port);
    });
  });
}

function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Starts a TLS proxy serving `cert`/`key` and forwarding to the shared broker. */
export async function startTlsProxy(credentials: { cert: string; key: string }): Promise<TlsProxy> {
  const sockets = new Set<Socket>();
  const handshakeErrors: Error[] = [];
  let forwarded = 0;
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const server = createTlsServer(
    { cert: credentials.cert, key: credentials.key },
    (client: TLSSocket) => {
      forwarded++;
      track(client);
      const upstream = createConnection({ host: BROKER_HOST, port: BROKER_PORT });
      track(upstream);
      client.pipe(upstream);
      upstream.pipe(client);
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
    },
  );
  server.on('connection', track);
  server.on('tlsClientError', (error: Error) => handshakeErrors.push(error));
  const port = await listen(server);
  return {
    port,
    handshakeErrors,
    forwarded: () => forwarded,
    close: () => closeServer(server, sockets),
  };
}

/** Starts a TCP listener that accepts connections and never writes a byte. */
export async function startSilentEndpoint(): Promise<SilentEndpoint> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.resume();
  });
  const port = await listen(server);
  return {
    port,
    accepted: () => accepted,
    open: () => sockets.size,
    close: () => closeServer(server, sockets),
  };
}
