/**
 * A throwaway PKI for the TLS specs (the shared `tls` option, the Redis TLS specs), made with the
 * `openssl` CLI in a temp dir at run time (no key or certificate in git). EC P-256 keys, valid for
 * one day.
 *
 * | file         | what                                                                           |
 * | ------------ | ------------------------------------------------------------------------------ |
 * | `ca`         | the CA of this run: signs the server's and the client's certificates           |
 * | `otherCa`    | an unrelated CA: trusting it must not make the server trusted                  |
 * | `server`     | `serverAuth`, SAN `DNS:redis.test` only: verified against 127.0.0.1 only with `servername` |
 * | `client`     | `clientAuth`: for a server that verifies clients (Redis's `tls-auth-clients yes`) |
 * | `lockedKey`  | `client.key` encrypted with {@link PKI_PASSPHRASE}                             |
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export const PKI_PASSPHRASE = 'correct horse';

export interface TlsTestPki {
  readonly dir: string;
  readonly ca: string;
  readonly otherCa: string;
  readonly server: { readonly cert: string; readonly key: string };
  readonly client: { readonly cert: string; readonly key: string };
  readonly lockedKey: string;
  /** Paths of the server's files, for a server started here (`redis-server --tls-*-file`). */
  readonly files: { readonly ca: string; readonly cert: string; readonly key: string };
  remove(): void;
}

const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** Makes the CAs, the server's and the client's certificates in a new temp dir. */
export async function makeTlsTestPki(): Promise<TlsTestPki> {
  const run = randomUUID().slice(0, 8);
  const dir = mkdtempSync(join(tmpdir(), 'nest-messaging-tls-'));
  const openssl = (args: string[]) => exec('openssl', args, { cwd: dir, timeout: 30_000 });
  const read = (file: string) => readFileSync(join(dir, file), 'utf8');
  const ca = (name: string) =>
    openssl([
      'req',
      '-x509',
      ...NEW_KEY,
      ...['-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '1'],
      ...['-subj', `/CN=nest-messaging tls test ${name} ${run}`],
      ...['-addext', 'basicConstraints=critical,CA:TRUE'],
      ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    ]);
  const leaf = async (name: string, usage: string, san?: string) => {
    const ext = [`extendedKeyUsage=${usage}`, 'basicConstraints=CA:FALSE'];
    if (san) ext.push(`subjectAltName=${san}`);
    writeFileSync(join(dir, `${name}.ext`), `${ext.join('\n')}\n`);
    await openssl([
      'req',
      ...NEW_KEY,
      ...['-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`],
    ]);
    await openssl([
      'x509',
      '-req',
      ...['-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial'],
      ...['-days', '1', '-out', `${name}.crt`, '-extfile', `${name}.ext`],
    ]);
    return { cert: read(`${name}.crt`), key: read(`${name}.key`) };
  };
  try {
    await ca('ca');
    await ca('other-ca');
    const server = await leaf('server', 'serverAuth', 'DNS:redis.test');
    const client = await leaf('client', 'clientAuth');
    await openssl([
      'pkey',
      ...['-in', 'client.key', '-out', 'locked.key', '-aes256'],
      ...['-passout', `pass:${PKI_PASSPHRASE}`],
    ]);
    return {
      dir,
      ca: read('ca.crt'),
      otherCa: read('other-ca.crt'),
      server,
      client,
      lockedKey: read('locked.key'),
      files: {
        ca: join(dir, 'ca.crt'),
        cert: join(dir, 'server.crt'),
        key: join(dir, 'server.key'),
      },
      remove: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
