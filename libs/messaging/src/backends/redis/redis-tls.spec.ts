import { MessagingConfigError } from '../../errors/messaging.errors';
import { resolveRedisOptions } from './redis-backend.options';
import { type RedisTlsOptions, tlsFailureHint, tlsResetHint } from './redis-tls';

const tlsOf = (tls: unknown, url: string) =>
  resolveRedisOptions({ url, tls: tls as RedisTlsOptions }).tls;

// The checks of the option itself (PEM, key pairing, ...) are backend/tls-options.spec.ts.
describe('RedisStreamsBackend tls option', () => {
  it('needs a rediss:// URL (with redis:// the password would cross in plain text)', () => {
    const tls = { servername: 'redis.test' };
    expect(tlsOf(tls, 'rediss://app:s3cret@h:6380')).toEqual({
      servername: 'redis.test',
      rejectUnauthorized: true,
    });
    expect(tlsOf(undefined, 'rediss://app:s3cret@h:6380')).toBeUndefined();
    expect(tlsOf(undefined, 'redis://app:s3cret@h:6379')).toBeUndefined();
    expect(() => tlsOf(tls, 'redis://app:s3cret@h:6379')).toThrow(MessagingConfigError);
    expect(() => tlsOf(tls, 'redis://app:s3cret@h:6379')).toThrow(
      "RedisStreamsBackend: tls is set but 'redis://app:***@h:6379' is not a TLS URL. Use rediss://, or drop the tls option.",
    );
  });

  it('checks the option where the backend is built', () => {
    expect(() => tlsOf({ ca: '/etc/redis/ca.pem' }, 'rediss://h:6380')).toThrow(
      "RedisStreamsBackend: tls.ca looks like a file path ('/etc/redis/ca.pem')",
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
