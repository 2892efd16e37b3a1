/**
 * A throwaway PKI for the TLS fault spec (issue 9, RELIABILITY.md §7 F23c), made with the `openssl`
 * CLI in a fresh temp dir at run time, so no key or certificate ever lands in git:
 *
 * | file          | what                                                                         |
 * | ------------- | ---------------------------------------------------------------------------- |
 * | `ca`          | a CA made for this run: the one the client must be told to trust             |
 * | `server`      | signed by `ca`, SAN `DNS:localhost, IP:127.0.0.1`: the right broker cert      |
 * | `wrongName`   | signed by `ca`, SAN `DNS:wrong-name.invalid` only: trusted, but not our host  |
 * | `otherCa`     | an unrelated CA: trusting it must not make `server` trusted                  |
 *
 * EC P-256 keys (fast on a 2-core box), valid for one day. `remove()` deletes the directory.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** A certificate and its private key, PEM. */
export interface CertAndKey {
  readonly cert: string;
  readonly key: string;
}

export interface TestPki {
  readonly dir: string;
  readonly ca: string;
  readonly otherCa: string;
  readonly server: CertAndKey;
  readonly wrongName: CertAndKey;
  remove(): void;
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function openssl(dir: string, args: string[]): Promise<void> {
  await exec('openssl', args, { cwd: dir, timeout: 30_000 });
}

async function makeCa(dir: string, name: string, run: string): Promise<void> {
  await openssl(dir, [
    'req',
    '-x509',
    ...KEY,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
    '-days',
    '1',
    '-subj',
    `/CN=nest-messaging test ${name} ${run}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

async function makeLeaf(dir: string, name: string, cn: string, san: string): Promise<CertAndKey> {
  writeFileSync(
    join(dir, `${name}.ext`),
    [
      `subjectAltName=${san}`,
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      '',
    ].join('\n'),
  );
  await openssl(dir, [
    'req',
    ...KEY,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${cn}`,
  ]);
  await openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '1',
    '-out',
    `${name}.crt`,
    '-extfile',
    `${name}.ext`,
  ]);
  return {
    cert: readFileSync(join(dir, `${name}.crt`), 'utf8'),
    key: readFileSync(join(dir, `${name}.key`), 'utf8'),
  };
}

/** Makes the CA, the other CA and both server certificates in a new temp dir. */
export async function makeTestPki(): Promise<TestPki> {
  const run = randomUUID().slice(0, 8);
  const dir = mkdtempSync(join(tmpdir(), 'nest-messaging-tls-'));
  try {
    await makeCa(dir, 'ca', run);
    await makeCa(dir, 'other-ca', run);
    const server = await makeLeaf(dir, 'server', 'localhost', 'DNS:localhost,IP:127.0.0.1');
    const wrongName = await makeLeaf(
      dir,
      'wrong-name',
      'wrong-name.invalid',
      'DNS:wrong-name.invalid',
    );
    return {
      dir,
      ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
      otherCa: readFileSync(join(dir, 'other-ca.crt'), 'utf8'),
      server,
      wrongName,
      remove: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
