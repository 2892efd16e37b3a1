/**
 * TLS of `NatsBackend` against private nats-servers with TLS (issue 20, T7), certificates made with
 * openssl for this run (`support/tls-certs.ts`, plus a client certificate made here):
 *
 * | case | server                          | client                                   | expected                                  |
 * | ---- | ------------------------------- | ---------------------------------------- | ----------------------------------------- |
 * | 1    | TLS, cert for 127.0.0.1         | `tls://`, no `ca` or another CA          | refused at once: not trusted, set `tls.ca` |
 * | 1b   |                                 | `tls://` or `nats://` + `tls.ca`         | connects; a message goes round            |
 * | 1c   |                                 | `rejectUnauthorized: false`              | connects (control: only the check refused) |
 * | 2    | TLS, cert for another name      | right CA                                 | refused at once: set `tls.servername`     |
 * | 2b   |                                 | right CA, `servername` of the cert       | connects                                  |
 * | 3    | TLS, verifies clients           | right CA, no client certificate          | refused at once: set `tls.cert` and `tls.key` |
 * | 3b   |                                 | right CA, client cert and key            | connects                                  |
 * | 4    | the shared one, no TLS          | `tls://`                                 | refused at once: the server has no TLS    |
 *
 * What the `tls` option must hold (PEM, a key that is its certificate's, ...) is checked at
 * construction, without a server: libs/messaging/src/backend/tls-options.spec.ts.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Logger } from '@nestjs/common';
import { NatsBackend } from '@app/messaging/nats';
import { waitFor } from '@app/messaging/testing';
import { startNatsServer, type PrivateNatsServer } from './support/nats-server';
import { makeTestPki, type CertAndKey, type TestPki } from './support/tls-certs';

const exec = promisify(execFile);
const CONNECT_TIMEOUT_MS = 3_000;
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

/** A client certificate signed by the run's CA (extendedKeyUsage clientAuth), and its key. */
async function makeClientCert(pki: TestPki): Promise<CertAndKey> {
  const run = (args: string[]) => exec('openssl', args, { cwd: pki.dir, timeout: 30_000 });
  writeFileSync(
    join(pki.dir, 'client.ext'),
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n',
  );
  await run([
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'client.key',
    '-out',
    'client.csr',
    '-subj',
    '/CN=nest-messaging test client',
  ]);
  await run([
    'x509',
    '-req',
    '-in',
    'client.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '1',
    '-out',
    'client.crt',
    '-extfile',
    'client.ext',
  ]);
  await run([
    'pkcs8',
    '-topk8',
    '-in',
    'client.key',
    '-out',
    'client-encrypted.key',
    '-v2',
    'aes-256-cbc',
    '-passout',
    'pass:open sesame',
  ]);
  return {
    cert: readFileSync(join(pki.dir, 'client.crt'), 'utf8'),
    key: readFileSync(join(pki.dir, 'client.key'), 'utf8'),
  };
}

/** A nats-server config block for TLS with `leaf`; `verify` makes it require client certificates. */
function tlsBlock(pki: TestPki, leaf: 'server' | 'wrong-name', verify: boolean): string {
  const file = (name: string) => JSON.stringify(join(pki.dir, name));
  return [
    'tls {',
    `  cert_file: ${file(`${leaf}.crt`)}`,
    `  key_file: ${file(`${leaf}.key`)}`,
    `  ca_file: ${file('ca.crt')}`,
    `  verify: ${verify}`,
    '  timeout: 2',
    '}',
  ].join('\n');
}

describe('faults: NATS over TLS, with a private CA, names and client certificates (issue 20, T7)', () => {
  let pki: TestPki;
  let client: CertAndKey;
  let tls: PrivateNatsServer;
  let wrongName: PrivateNatsServer;
  let mutual: PrivateNatsServer;
  const open: NatsBackend[] = [];

  const backend = (options: ConstructorParameters<typeof NatsBackend>[0]): NatsBackend => {
    const b = new NatsBackend({ prefix: 'tls', connectTimeoutMs: CONNECT_TIMEOUT_MS, ...options });
    b.on('error', () => undefined);
    open.push(b);
    return b;
  };

  /**
   * Connects, which must fail at once (trying again cannot help, so connect() does not wait out
   * its timeout), or within `connectTimeoutMs` when the client learns why only after a timeout;
   * resolves with the error's message.
   */
  async function refused(b: NatsBackend, within = CONNECT_TIMEOUT_MS / 2): Promise<string> {
    const startedAt = Date.now();
    const error = await b.connect().then(
      () => new Error('connected'),
      (e: unknown) => e as Error,
    );
    expect(error).toMatchObject({ name: 'NatsConnectError', code: 'CONNECT_FAILED' });
    expect(Date.now() - startedAt).toBeLessThan(within);
    return error.message;
  }

  /** Connects and sends one message round: the link works, not only the handshake. */
  async function roundTrip(b: NatsBackend, topic: string): Promise<void> {
    const got: string[] = [];
    await b.subscribe(
      { service: 'tls', queue: `tls.${topic}`, topics: [topic], external: false, concurrency: 1 },
      async (d) => {
        got.push(d.body.toString());
        return { action: 'ack' };
      },
    );
    await b.publish(
      {
        topic,
        body: Buffer.from('"over tls"'),
        headers: {},
        messageId: `${topic}-1`,
        timestamp: Date.now(),
      },
      { mandatory: true },
    );
    await waitFor(() => got.length === 1);
    expect(got).toEqual(['"over tls"']);
  }

  beforeAll(async () => {
    Logger.overrideLogger(false);
    pki = await makeTestPki();
    client = await makeClientCert(pki);
    [tls, wrongName, mutual] = await Promise.all([
      startNatsServer({ config: () => tlsBlock(pki, 'server', false) }),
      startNatsServer({ config: () => tlsBlock(pki, 'wrong-name', false) }),
      startNatsServer({ config: () => tlsBlock(pki, 'server', true) }),
    ]);
  }, 90_000);

  afterEach(async () => {
    await Promise.all(open.splice(0).map((b) => b.close()));
  });

  afterAll(async () => {
    await Promise.all([tls?.remove(), wrongName?.remove(), mutual?.remove()]);
    pki?.remove();
  });

  it('1: refuses a server certificate it was not told to trust, and says to set tls.ca', async () => {
    expect(tls.url).toMatch(/^tls:\/\//);
    for (const options of [{}, { tls: { ca: pki.otherCa } }]) {
      const message = await refused(backend({ servers: tls.url, ...options }));
      expect(message).toContain(`could not connect to ${tls.url} (`);
      expect(message).toMatch(/not trusted: give the CA that signed it in tls\.ca/);
    }
  });

  it('1b: connects with the CA that signed the certificate, from a tls:// URL or a nats:// one with tls', async () => {
    await roundTrip(backend({ servers: tls.url, tls: { ca: pki.ca } }), 'tls.one');
    await roundTrip(
      backend({ servers: `nats://127.0.0.1:${tls.port}`, tls: { ca: Buffer.from(pki.ca) } }),
      'tls.two',
    );
  });

  it('1c: connects without the check when told to (control)', async () => {
    await backend({ servers: tls.url, tls: { rejectUnauthorized: false } }).connect();
  });

  it('2: refuses a certificate made out to another name, and says to set tls.servername', async () => {
    const message = await refused(backend({ servers: wrongName.url, tls: { ca: pki.ca } }));
    expect(message).toMatch(
      /another name: connect by a host name it lists, or set tls\.servername/,
    );
  });

  it('2b: connects when tls.servername is a name of the certificate', async () => {
    await roundTrip(
      backend({ servers: wrongName.url, tls: { ca: pki.ca, servername: 'wrong-name.invalid' } }),
      'tls.name',
    );
  });

  it('3: says to set tls.cert and tls.key when the server verifies clients', async () => {
    // The refusal comes after the handshake: nats.js sees a timeout, the backend then asks why.
    const message = await refused(
      backend({ servers: mutual.url, tls: { ca: pki.ca } }),
      CONNECT_TIMEOUT_MS,
    );
    expect(message).toContain(`could not connect to ${mutual.url} (`);
    expect(message).toMatch(/verifies clients and refused this one: set tls\.cert and tls\.key/);
  });

  it('3b: connects with a client certificate the server trusts', async () => {
    await roundTrip(
      backend({ servers: mutual.url, tls: { ca: pki.ca, cert: client.cert, key: client.key } }),
      'tls.mutual',
    );
    const encrypted = readFileSync(join(pki.dir, 'client-encrypted.key'));
    await backend({
      servers: mutual.url,
      tls: { ca: pki.ca, cert: client.cert, key: encrypted, passphrase: 'open sesame' },
    }).connect();
  });

  it('4: says the server has no TLS when a tls:// URL meets one without', async () => {
    const plain = NATS_URL.replace(/^nats:/, 'tls:');
    const message = await refused(backend({ servers: plain }));
    expect(message).toMatch(/has no TLS: connect with nats:\/\/ URLs and without tls/);
  });
});
