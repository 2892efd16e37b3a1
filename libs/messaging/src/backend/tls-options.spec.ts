import { inspect } from 'node:util';
import { MessagingConfigError } from '../errors/messaging.errors';
import { makeTlsTestPki, PKI_PASSPHRASE, type TlsTestPki } from './tls-pki.fixture';
import { resolveTlsOptions, type TlsOptions } from './tls-options';

let pki: TlsTestPki;
beforeAll(async () => (pki = await makeTlsTestPki()), 60_000);
afterAll(() => pki?.remove());

const resolve = (tls: unknown) => resolveTlsOptions(tls as TlsOptions, 'SomeBackend');

/** The error `resolve(tls)` throws (the spec fails when it throws none). */
function refusal(tls: unknown): MessagingConfigError {
  try {
    resolve(tls);
  } catch (error) {
    expect(error).toBeInstanceOf(MessagingConfigError);
    return error as MessagingConfigError;
  }
  throw new Error(`accepted ${inspect(tls)}`);
}

const BROKEN_CERTIFICATE = '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----';

describe('resolveTlsOptions (the tls option of every backend)', () => {
  it('keeps only what was given, verifying the server by default', () => {
    const client = { ca: pki.ca, cert: pki.client.cert, key: Buffer.from(pki.client.key) };
    expect(resolve(client)).toEqual({ ...client, rejectUnauthorized: true });
    expect(resolve({ ca: [pki.ca, Buffer.from(pki.otherCa)], servername: 'redis.test' })).toEqual({
      ca: [pki.ca, Buffer.from(pki.otherCa)],
      servername: 'redis.test',
      rejectUnauthorized: true,
    });
    expect(resolve({ ca: pki.ca + pki.otherCa })).toEqual({
      ca: pki.ca + pki.otherCa,
      rejectUnauthorized: true,
    });
    expect(
      resolve({ cert: pki.client.cert, key: pki.lockedKey, passphrase: PKI_PASSPHRASE }),
    ).toMatchObject({ passphrase: PKI_PASSPHRASE });
    expect(resolve({ rejectUnauthorized: false })).toEqual({ rejectUnauthorized: false });
    expect(resolve({})).toEqual({ rejectUnauthorized: true });
    expect(resolve(undefined)).toBeUndefined();
  });

  it.each<[string, () => unknown, string]>([
    ['not an object', () => 'yes', 'SomeBackend: tls must be an object with'],
    [
      'a misspelt key',
      () => ({ servrname: 'x' }),
      "SomeBackend: tls has no option 'servrname'; did you mean 'servername'?",
    ],
    [
      'cert without key',
      () => ({ cert: pki.client.cert }),
      'SomeBackend: tls.cert is set without tls.key. Mutual TLS needs both',
    ],
    ['key without cert', () => ({ key: pki.client.key }), 'tls.key is set without tls.cert'],
    [
      'a passphrase without key',
      () => ({ passphrase: 'p' }),
      'tls.passphrase is set without tls.key: it opens an encrypted tls.key, give it with tls.key only.',
    ],
    [
      'an empty passphrase',
      () => ({ passphrase: '' }),
      'tls.passphrase must be a non-empty string',
    ],
    ['a passphrase not a string', () => ({ passphrase: 42 }), 'tls.passphrase must be a non-empty'],
    ['an empty CA list', () => ({ ca: [] }), 'SomeBackend: tls.ca is an empty list'],
    [
      'a CA file path instead of its content',
      () => ({ ca: '/etc/ssl/ca.pem' }),
      "tls.ca looks like a file path ('/etc/ssl/ca.pem'): give the certificate itself, readFileSync('/etc/ssl/ca.pem')",
    ],
    [
      'a CA file path in a Buffer',
      () => ({ ca: Buffer.from('certs/ca.crt') }),
      "tls.ca looks like a file path ('certs/ca.crt')",
    ],
    [
      'a CA that is no PEM',
      () => ({ ca: 'not a certificate' }),
      "tls.ca is not a certificate PEM (no '-----BEGIN CERTIFICATE-----' line)",
    ],
    [
      'a private key given as the CA',
      () => ({ ca: pki.client.key }),
      'tls.ca is not a certificate PEM',
    ],
    [
      'a CA of the wrong type',
      () => ({ ca: 42 }),
      'tls.ca must be the certificate PEM, as a string or a Buffer (readFileSync(path)), got number',
    ],
    ['a null CA', () => ({ ca: null }), 'got null'],
    [
      'a broken CA in a list',
      () => ({ ca: [pki.ca, 'x y'] }),
      'tls.ca[1] is not a certificate PEM',
    ],
    [
      'a certificate block that does not parse',
      () => ({ ca: BROKEN_CERTIFICATE }),
      'tls.ca holds a certificate that cannot be read',
    ],
    [
      'a client certificate file path',
      () => ({ cert: 'client.pem', key: pki.client.key }),
      "tls.cert looks like a file path ('client.pem'): give the certificate itself",
    ],
    [
      'a key that is not the certificate’s',
      () => ({ cert: pki.client.cert, key: pki.server.key }),
      'tls.key is not the private key of tls.cert (CN=client). Give the key the certificate was issued for.',
    ],
    [
      'a locked key without its passphrase',
      () => ({ cert: pki.client.cert, key: pki.lockedKey }),
      'tls.key is encrypted: give its tls.passphrase.',
    ],
    [
      'a locked key with the wrong passphrase',
      () => ({ cert: pki.client.cert, key: pki.lockedKey, passphrase: 'wrong' }),
      ': check tls.passphrase.',
    ],
    [
      'a certificate given as the key',
      () => ({ cert: pki.client.cert, key: pki.client.cert }),
      "tls.key is not a private key PEM (no '-----BEGIN PRIVATE KEY-----' line)",
    ],
    [
      'a key file path (not shown)',
      () => ({ cert: pki.client.cert, key: 'client.key' }),
      'tls.key looks like a file path: give the private key itself, readFileSync(path).',
    ],
    [
      'a key of the wrong type',
      () => ({ cert: pki.client.cert, key: 7 }),
      'tls.key must be the private key PEM, as a string or a Buffer',
    ],
    [
      'an empty servername',
      () => ({ servername: '' }),
      'tls.servername must be a non-empty string',
    ],
    [
      'a servername that is no host name',
      () => ({ servername: 'not a host' }),
      'tls.servername must be a host name such as \'broker.internal\', got "not a host".',
    ],
    [
      'rejectUnauthorized not a boolean',
      () => ({ rejectUnauthorized: 'no' }),
      'SomeBackend: tls.rejectUnauthorized must be true or false',
    ],
  ])('refuses %s, saying what to change', (_, tls, message) => {
    expect(refusal(tls()).message).toContain(message);
  });

  it('never shows a passphrase or a key', () => {
    const secretKey = 'MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/s3cr3t+k3y';
    const shown = [
      refusal({ cert: pki.client.cert, key: secretKey }),
      refusal({ cert: pki.client.cert, key: pki.lockedKey, passphrase: 'hunter2-wrong' }),
      refusal({ passphrase: 'hunter2-alone' }),
      refusal({ cert: pki.client.cert, key: pki.server.key }),
    ].map((error) => inspect(error));
    for (const text of shown) {
      expect(text).not.toContain(secretKey);
      expect(text).not.toContain('hunter2');
      expect(text).not.toContain(pki.server.key.split('\n')[1]);
    }
  });
});
