/**
 * Why a TLS connection to a NATS server fails, when nats.js cannot say. With TLS 1.3 a server that
 * verifies clients checks the client's certificate after the handshake has completed on the
 * client's side; its refusal (an alert) then closes a connection nats.js already counts as made,
 * and nats.js 3 drops that error: its first connection attempt ends in a bare `timeout`. So when a
 * TLS attempt times out, the backend opens one connection of its own the same way (INFO, the TLS
 * upgrade with the same options, CONNECT and PING) and reads what the server answers: the alert
 * (with its code), a PONG (TLS is fine, the timeout is elsewhere), or nothing in time.
 */
import { isIP, Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ResolvedNatsTls } from './nats-tls';

/** Host and port of a server URL (`tls://h:4222`, `h`, `nats://[::1]:4222`). */
export function hostPortOf(server: string): { host: string; port: number } {
  const hostPort = server.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '');
  const match = /^(\[([^\]]+)\]|[^:]+)(?::(\d+))?$/.exec(hostPort);
  return {
    host: match?.[2] ?? match?.[1] ?? hostPort,
    port: Number(match?.[3] ?? 4222),
  };
}

/**
 * Connects to `server` over TLS as nats.js does and resolves with the error the server's TLS
 * answer holds, or undefined when TLS works there (or nothing could be learnt within `timeoutMs`).
 */
export function probeTls(
  server: string,
  tls: ResolvedNatsTls,
  timeoutMs: number,
): Promise<Error | undefined> {
  const { host, port } = hostPortOf(server);
  return new Promise((resolve) => {
    const raw = new Socket();
    let secure: ReturnType<typeof tlsConnect> | undefined;
    let done = false;
    const finish = (error?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      secure?.destroy();
      raw.destroy();
      resolve(error);
    };
    const timer = setTimeout(() => finish(), timeoutMs);
    const closed = () => finish();
    raw.once('error', closed);
    raw.once('close', closed);
    let info = '';
    const onInfo = (chunk: Buffer) => {
      info += chunk.toString('latin1');
      if (!info.includes('\r\n')) return;
      raw.off('data', onInfo);
      // From now on the TLS socket says how it ended (its error comes before the raw close).
      raw.off('close', closed);
      // As nats.js: the host name as SNI (none for an IP address), unless tls.servername says.
      secure = tlsConnect({
        ...tls,
        socket: raw,
        servername: tls.servername ?? (isIP(host) ? '' : host),
      });
      secure.once('error', (error) => finish(error));
      secure.once('secureConnect', () =>
        secure?.write('CONNECT {"verbose":false,"pedantic":false,"tls_required":true}\r\nPING\r\n'),
      );
      // A PONG, or an -ERR (credentials, not sent here): TLS itself works.
      secure.once('data', () => finish());
      secure.once('close', () => finish());
    };
    raw.on('data', onInfo);
    raw.connect(port, host);
  });
}
