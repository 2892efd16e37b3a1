/**
 * TLS of {@link RedisStreamsBackend}: the `tls` option, checked when the backend is constructed so that
 * a wrong file, a key that does not match its certificate or a plain `redis://` URL fails at start-up
 * with what to change, instead of as a handshake error (or a connection in plain text) later.
 *
 * | Check                                   | Why                                                           |
 * | --------------------------------------- | ------------------------------------------------------------- |
 * | the URL is `rediss://`                  | with `redis://` the password would cross in plain text        |
 * | `ca`, `cert` are PEM certificates        | a file path given instead of its content is the usual mistake |
 * | `cert` and `key` come together          | mutual TLS needs both; either alone is ignored by the server  |
 * | `key` opens (with `passphrase`) and is `cert`'s | a mismatch only shows as a handshake failure later    |
 */
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { checkBoolean, checkName, checkOptionsObject } from '../../errors/config-checks';
import { MessagingConfigError } from '../../errors/messaging.errors';

/**
 * TLS settings for `rediss://` URLs, handed to Node's `tls.connect()`. Without them a `rediss://` URL
 * trusts the system's CAs (and `NODE_EXTRA_CA_CERTS`).
 *
 * @example
 * new RedisStreamsBackend({
 *   url: 'rediss://app:secret@redis.internal:6380',
 *   tls: { ca: readFileSync('ca.pem'), cert: readFileSync('client.pem'), key: readFileSync('client.key') },
 * });
 */
export interface RedisTlsOptions {
  /** Trusted CA certificate(s), PEM (the content, not the path). @default the system's CAs */
  readonly ca?: string | Buffer | Array<string | Buffer>;
  /** Client certificate for mutual TLS (`tls-auth-clients yes`), PEM; needs `key`. */
  readonly cert?: string | Buffer;
  /** Private key of `cert`, PEM. */
  readonly key?: string | Buffer;
  /** Passphrase of an encrypted `key`. */
  readonly passphrase?: string;
  /**
   * Host name the server's certificate must name (and SNI), when it differs from the URL's host (a
   * connection through an IP address or a tunnel). @default the URL's host
   */
  readonly servername?: string;
  /**
   * Verify the server's certificate. Never turn this off outside a test.
   * @default true
   */
  readonly rejectUnauthorized?: boolean;
}

const TLS_KEYS: readonly (keyof RedisTlsOptions)[] = [
  'ca',
  'cert',
  'key',
  'passphrase',
  'servername',
  'rejectUnauthorized',
];

const CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Checks `tls` against the URL (already validated; `shownUrl` has its password hidden) and returns
 * the options for `tls.connect()`, with only the keys given. Throws {@link MessagingConfigError}.
 */
export function resolveRedisTls(
  tls: RedisTlsOptions | undefined,
  url: string,
  shownUrl: string,
  where: string,
): RedisTlsOptions | undefined {
  const o = checkOptionsObject(tls, TLS_KEYS, `${where}: tls`);
  if (o === undefined) return undefined;
  if (!url.toLowerCase().startsWith('rediss://')) {
    throw new MessagingConfigError(
      `${where}: tls is set but '${shownUrl}' is not a TLS URL. Use rediss://, or drop the tls option.`,
    );
  }
  if ((o.cert === undefined) !== (o.key === undefined)) {
    throw new MessagingConfigError(
      `${where}: tls.${o.cert === undefined ? 'key' : 'cert'} is set without tls.${o.cert === undefined ? 'cert' : 'key'}. Mutual TLS needs both the client certificate and its private key.`,
    );
  }
  if (o.passphrase !== undefined && (typeof o.passphrase !== 'string' || o.key === undefined)) {
    throw new MessagingConfigError(
      `${where}: tls.passphrase must be a string, and opens tls.key: give it with tls.key only.`,
    );
  }
  if (o.ca !== undefined) {
    const cas = Array.isArray(o.ca) ? o.ca : [o.ca];
    if (cas.length === 0) {
      throw new MessagingConfigError(
        `${where}: tls.ca is an empty list. Give the CA certificate(s) PEM, or leave tls.ca out to trust the system's CAs.`,
      );
    }
    cas.forEach((ca, i) =>
      certificatesOf(ca, `${where}: tls.ca${Array.isArray(o.ca) ? `[${i}]` : ''}`),
    );
  }
  if (o.cert !== undefined && o.key !== undefined) {
    const [cert] = certificatesOf(o.cert, `${where}: tls.cert`);
    if (!cert.checkPrivateKey(privateKeyOf(o.key, o.passphrase, where))) {
      throw new MessagingConfigError(
        `${where}: tls.key is not the private key of tls.cert (${cert.subject.replace(/\n/g, ', ')}). Give the key the certificate was issued for.`,
      );
    }
  }
  const resolved: RedisTlsOptions = {
    ...o,
    servername: checkName(o.servername, `${where}: tls.servername`),
    rejectUnauthorized: checkBoolean(
      o.rejectUnauthorized,
      true,
      `${where}: tls.rejectUnauthorized`,
    ),
  };
  return Object.fromEntries(Object.entries(resolved).filter(([, value]) => value !== undefined));
}

/** The certificates of one PEM value; throws naming `where` when it holds none, or a broken one. */
function certificatesOf(value: unknown, where: string): [X509Certificate, ...X509Certificate[]] {
  const text = pemText(value, where, 'certificate');
  const blocks = text.match(CERTIFICATE) ?? [];
  if (blocks.length === 0) throw notPem(text, where, 'certificate', 'BEGIN CERTIFICATE');
  const certificates = blocks.map((block) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new MessagingConfigError(
        `${where} holds a certificate that cannot be read (${(error as Error).message}).`,
      );
    }
  });
  return certificates as [X509Certificate, ...X509Certificate[]];
}

function privateKeyOf(value: unknown, passphrase: string | undefined, where: string): KeyObject {
  const text = pemText(value, `${where}: tls.key`, 'private key');
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    throw notPem(text, `${where}: tls.key`, 'private key', 'BEGIN PRIVATE KEY');
  }
  if (passphrase === undefined && /ENCRYPTED/.test(text)) {
    throw new MessagingConfigError(`${where}: tls.key is encrypted: give its tls.passphrase.`);
  }
  try {
    return createPrivateKey({ key: text, passphrase });
  } catch (error) {
    throw new MessagingConfigError(
      `${where}: tls.key cannot be read (${(error as Error).message})` +
        (passphrase === undefined ? '.' : ': check tls.passphrase.'),
    );
  }
}

function pemText(value: unknown, where: string, what: string): string {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  throw new MessagingConfigError(
    `${where} must be the ${what} PEM, as a string or a Buffer (readFileSync(path)), got ${value === null ? 'null' : typeof value}.`,
  );
}

function notPem(text: string, where: string, what: string, marker: string): MessagingConfigError {
  const path = text.length < 1024 && !/\s/.test(text.trim()) && /[/\\.]/.test(text);
  return new MessagingConfigError(
    path
      ? `${where} looks like a file path ('${text.trim()}'): give the ${what} itself, readFileSync('${text.trim()}').`
      : `${where} is not a ${what} PEM (no '-----${marker}-----' line).`,
  );
}

/**
 * TLS handshake failures that retrying does not cure, by Node's error code, and which option fixes
 * each: Redis's certificate not trusted here, or ours refused there.
 */
const CERTIFICATE_FAILURES: Readonly<Record<string, (tls?: RedisTlsOptions) => string>> = {
  ERR_TLS_CERT_ALTNAME_INVALID: () =>
    "Redis's certificate does not name the URL's host: connect by a name it holds, or set tls.servername to one.",
  SELF_SIGNED_CERT_IN_CHAIN: untrusted,
  DEPTH_ZERO_SELF_SIGNED_CERT: untrusted,
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: untrusted,
  UNABLE_TO_GET_ISSUER_CERT: untrusted,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: untrusted,
  CERT_UNTRUSTED: untrusted,
  CERT_SIGNATURE_FAILURE: untrusted,
  CERT_HAS_EXPIRED: () => "Redis's certificate has expired: Redis needs a new one.",
  CERT_NOT_YET_VALID: () =>
    "Redis's certificate is not valid yet: check this machine's clock, or the certificate.",
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: () =>
    'Redis asks for a client certificate (tls-auth-clients): give tls.cert and tls.key.',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: () =>
    'Redis does not trust the CA of tls.cert: give a client certificate signed by the CA of its tls-ca-cert-file.',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: () =>
    'Redis refused tls.cert: give a client certificate for client authentication, signed by the CA of its tls-ca-cert-file.',
};

function untrusted(tls?: RedisTlsOptions): string {
  return tls?.ca === undefined
    ? "No trusted CA signed Redis's certificate: give the CA that signed it as tls.ca (its PEM)."
    : "tls.ca does not hold the CA that signed Redis's certificate: give that CA (its PEM) as tls.ca.";
}

/**
 * What to change when the TLS handshake failed with `error` for good (a certificate refused on either
 * side), or `undefined` when `error` is something else (which retrying may cure).
 */
export function tlsFailureHint(error: Error, tls?: RedisTlsOptions): string | undefined {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string' || !Object.hasOwn(CERTIFICATE_FAILURES, code)) return undefined;
  return CERTIFICATE_FAILURES[code]?.(tls);
}

/**
 * After connecting timed out with `error`: Redis resetting TLS connections of a client that gave no
 * certificate is most likely Redis asking for one (TLS 1.3 may report it as a reset, not as the alert).
 */
export function tlsResetHint(error: Error | undefined, url: string, tls?: RedisTlsOptions): string {
  const reset = (error as { code?: unknown } | undefined)?.code === 'ECONNRESET';
  return reset && /^rediss:/i.test(url) && tls?.cert === undefined
    ? ' If Redis asks for client certificates (tls-auth-clients), give tls.cert and tls.key.'
    : '';
}
