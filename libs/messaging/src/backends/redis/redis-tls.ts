/**
 * TLS of {@link RedisStreamsBackend}, what is Redis's own: the `tls` option needs a `rediss://` URL
 * (with `redis://` the password would cross in plain text), and what to change after a handshake
 * Redis refused. The option itself, and its checks, are the shared `TlsOptions`
 * (`backend/tls-options.ts`).
 */
import {
  resolveTlsOptions,
  type ResolvedTlsOptions,
  type TlsOptions,
} from '../../backend/tls-options';
import { MessagingConfigError } from '../../errors/messaging.errors';

/**
 * TLS settings for `rediss://` URLs: the shared {@link TlsOptions}. Without them a `rediss://` URL
 * trusts Node's public CAs (and `NODE_EXTRA_CA_CERTS`).
 */
export type RedisTlsOptions = TlsOptions;

/**
 * Checks `tls` against the URL (already validated; `shownUrl` has its password hidden) and returns
 * the options for `tls.connect()`, with only the keys given. Throws {@link MessagingConfigError}.
 */
export function resolveRedisTls(
  tls: RedisTlsOptions | undefined,
  url: string,
  shownUrl: string,
  where: string,
): ResolvedTlsOptions | undefined {
  if (tls !== undefined && !url.toLowerCase().startsWith('rediss://')) {
    throw new MessagingConfigError(
      `${where}: tls is set but '${shownUrl}' is not a TLS URL. Use rediss://, or drop the tls option.`,
    );
  }
  return resolveTlsOptions(tls, where);
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
