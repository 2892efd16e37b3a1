import { MessagingConfigError } from '../../errors/messaging.errors';
import { resolveRedisOptions } from './redis-backend.options';
import { makeRedisTestPki, PKI_PASSPHRASE, type RedisTestPki } from './redis-tls.fixture';
import { type RedisTlsOptions, tlsFailureHint, tlsResetHint } from './redis-tls';

let pki: RedisTestPki;
beforeAll(async () => (pki = await makeRedisTestPki()), 60_000);
afterAll(() => pki?.remove());

const TLS_URL = 'rediss://app:s3cret@redis.internal:6380';
const tlsOf = (tls: unknown, url = TLS_URL) =>
  resolveRedisOptions({ url, tls: tls as RedisTlsOptions }).tls;

describe('RedisStreamsBackend tls option', () => {
  it('keeps what was given, verifying the server by default', () => {
    const client = { ca: pki.ca, cert: pki.client.cert, key: Buffer.from(pki.client.key) };
    expect(tlsOf(client)).toEqual({ ...client, rejectUnauthorized: true });
    expect(tlsOf({ ca: [pki.ca, pki.otherCa], servername: 'redis.test' })).toEqual({
      ca: [pki.ca, pki.otherCa],
      servername: 'redis.test',
      rejectUnauthorized: true,
    });
    expect(
      tlsOf({ cert: pki.client.cert, key: pki.lockedKey, passphrase: PKI_PASSPHRASE }),
    ).toMatchObject({ passphrase: PKI_PASSPHRASE });
    expect(tlsOf(undefined)).toBeUndefined();
  });

  it.each([
    [
      'a plain redis:// URL (the password would cross in plain text)',
      { ca: 'x' },
      "tls is set but 'redis://app:***@h:6379' is not a TLS URL. Use rediss://",
      'redis://app:s3cret@h:6379',
    ],
    ['a misspelt key', { certificate: 'x' }, 'tls'],
    ['cert without key', { cert: 'x' }, 'tls.cert is set without tls.key. Mutual TLS needs both'],
    ['key without cert', { key: 'x' }, 'tls.key is set without tls.cert'],
    ['an empty CA list', { ca: [] }, 'tls.ca is an empty list'],
    [
      'a CA file path instead of its content',
      { ca: '/etc/redis/ca.pem' },
      "tls.ca looks like a file path ('/etc/redis/ca.pem'): give the certificate itself, readFileSync('/etc/redis/ca.pem')",
    ],
    ['a CA that is no PEM', { ca: 'not a certificate' }, "no '-----BEGIN CERTIFICATE-----' line"],
    [
      'a CA of the wrong type',
      { ca: 42 },
      'tls.ca must be the certificate PEM, as a string or a Buffer',
    ],
    ['a broken CA in a list', { ca: ['x y'] }, 'tls.ca[0] is not a certificate PEM'],
    ['a passphrase without key', { passphrase: 'p' }, 'opens tls.key: give it with tls.key only'],
    ['an empty servername', { servername: '' }, 'tls.servername must be a non-empty string'],
    [
      'rejectUnauthorized not a boolean',
      { rejectUnauthorized: 'no' },
      'tls.rejectUnauthorized must be true or false',
    ],
  ])('refuses %s, saying what to change', (_, tls, message, url = TLS_URL) => {
    expect(() => tlsOf(tls, url)).toThrow(MessagingConfigError);
    expect(() => tlsOf(tls, url)).toThrow(message);
  });

  it('refuses a key that is not the certificate’s, and a locked key without its passphrase', () => {
    expect(() => tlsOf({ cert: pki.client.cert, key: pki.server.key })).toThrow(
      /tls\.key is not the private key of tls\.cert \(CN=client\)/,
    );
    expect(() => tlsOf({ cert: pki.client.cert, key: pki.lockedKey })).toThrow(
      /tls\.key is encrypted: give its tls\.passphrase/,
    );
    expect(() => tlsOf({ cert: pki.client.cert, key: pki.lockedKey, passphrase: 'wrong' })).toThrow(
      /tls\.key cannot be read .*: check tls\.passphrase/,
    );
    expect(() => tlsOf({ cert: pki.client.cert, key: pki.client.cert })).toThrow(
      /tls\.key is not a private key PEM/,
    );
  });
});

describe('tlsFailureHint', () => {
  const failure = (code: string) => Object.assign(new Error(code), { code });
  it.each([
    ['ERR_TLS_CERT_ALTNAME_INVALID', {}, /set tls\.servername/],
    ['SELF_SIGNED_CERT_IN_CHAIN', {}, /give the CA that signed it as tls\.ca/],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', { ca: 'x' }, /tls\.ca does not hold the CA/],
    ['CERT_HAS_EXPIRED', {}, /has expired/],
    ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', {}, /give tls\.cert and tls\.key/],
    ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', {}, /does not trust the CA of tls\.cert/],
  ])('says what to change after %s', (code, tls, hint) => {
    expect(tlsFailureHint(failure(code), tls)).toMatch(hint);
  });

  it('has no hint for what retrying may cure', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'toString', '__proto__']) {
      expect(tlsFailureHint(failure(code))).toBeUndefined();
    }
    expect(tlsFailureHint(new Error('no code'))).toBeUndefined();
  });
});

describe('tlsResetHint', () => {
  const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
  it('asks for a client certificate only after a reset over TLS without one', () => {
    expect(tlsResetHint(reset, 'rediss://h:6380')).toMatch(/give tls\.cert and tls\.key/);
    expect(tlsResetHint(reset, 'rediss://h:6380', { cert: 'c', key: 'k' })).toBe('');
    expect(tlsResetHint(reset, 'redis://h:6379')).toBe('');
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect(tlsResetHint(refused, 'rediss://h:6380')).toBe('');
    expect(tlsResetHint(undefined, 'rediss://h:6380')).toBe('');
  });
});
