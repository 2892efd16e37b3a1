/**
 * `RedisStreamsBackend` over TLS, against a `redis-server` of its own that serves TLS only and asks
 * for client certificates (`tls-auth-clients yes`), with a certificate that names `redis.test` only.
 */
import { Logger } from '@nestjs/common';
import type { Delivery } from '../../backend/broker-backend.interface';
import { waitFor } from '../../testing/wait-for';
import { RedisConnectError } from './redis-connection';
import { type PrivateRedis, startPrivateRedis } from './redis-server.fixture';
import { ACK, routeSpec, textMessage } from './redis-spec.fixture';
import { makeTlsTestPki, PKI_PASSPHRASE, type TlsTestPki } from '../../backend/tls-pki.fixture';
import { RedisStreamsBackend, type RedisStreamsBackendOptions } from './index';

let pki: TlsTestPki;
let redis: PrivateRedis;
let open: RedisStreamsBackend[] = [];

beforeAll(async () => {
  Logger.overrideLogger(false);
  pki = await makeTlsTestPki();
  const { ca, cert, key } = pki.files;
  redis = await startPrivateRedis(
    [
      ...['--tls-cert-file', cert, '--tls-key-file', key, '--tls-ca-cert-file', ca],
      ...['--tls-auth-clients', 'yes'],
    ],
    { tls: true },
  );
}, 60_000);

afterEach(async () => {
  const backends = open;
  open = [];
  await Promise.all(backends.map((b) => b.close()));
});

afterAll(async () => {
  await redis?.remove();
  pki?.remove();
});

function backend(options: Partial<RedisStreamsBackendOptions>): RedisStreamsBackend {
  const b = new RedisStreamsBackend({ url: redis.url, prefix: 'tls', blockMs: 100, ...options });
  open.push(b);
  return b;
}

describe('RedisStreamsBackend over TLS (rediss://)', () => {
  const trusted = () => ({
    ca: pki.ca,
    cert: pki.client.cert,
    key: pki.client.key,
    servername: 'redis.test',
  });

  it('connects with the CA, a client certificate and the servername, and carries a message', async () => {
    const b = backend({ tls: trusted() });
    await b.connect();
    const seen: string[] = [];
    await b.subscribe(routeSpec('svc', ['greeting']), async (delivery: Delivery) => {
      seen.push(delivery.body.toString());
      return ACK;
    });
    await b.publish(textMessage({ topic: 'greeting' }, 'over tls'), { mandatory: true });
    await waitFor(() => seen.length === 1);
    expect(seen).toEqual(['over tls']);
  });

  it('opens a client key locked with a passphrase', async () => {
    const b = backend({
      tls: { ...trusted(), key: Buffer.from(pki.lockedKey), passphrase: PKI_PASSPHRASE },
    });
    await expect(b.connect()).resolves.toBeUndefined();
  });

  it('fails at once, naming tls.ca, when the CA given did not sign the certificate', async () => {
    const b = backend({ tls: { ...trusted(), ca: pki.otherCa }, connectTimeoutMs: 10_000 });
    const started = Date.now();
    const error = await b.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedisConnectError);
    expect((error as Error).message).toMatch(/TLS handshake failed.*tls\.ca does not hold/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("fails at once, naming tls.servername, when the certificate does not name the URL's host", async () => {
    const { servername: _, ...noServername } = trusted();
    const b = backend({ tls: noServername, connectTimeoutMs: 10_000 });
    const started = Date.now();
    await expect(b.connect()).rejects.toThrow(/does not name the URL's host.*tls\.servername/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('says to give a client certificate when Redis asks for one and none was given', async () => {
    // Refused at once ('certificate required' alert) or reset (TLS 1.3 may send first): either way.
    const b = backend({
      tls: { ca: pki.ca, servername: 'redis.test' },
      connectTimeoutMs: 1_000,
      commandTimeoutMs: 200, // ioredis's CLIENT SETNAME of each attempt waits this long
    });
    await expect(b.connect()).rejects.toThrow(/give tls\.cert and tls\.key/);
  });
});
