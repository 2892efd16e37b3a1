/**
 * The `tls` option of every broker backend (AMQP, Redis, NATS), written once: what it holds and
 * how it is checked when the backend is constructed, so that a wrong file, a key that does not
 * match its certificate or a misspelt key fails at start-up with what to change, instead of as a
 * handshake error at the first connection. What stays with each backend is its broker's own rule (which URL
 * scheme TLS needs: `amqps://`, `rediss://`, `tls://`) and its hints after a failed handshake.
 *
 * | Check                                              | Why                                                           |
 * | -------------------------------------------------- | ------------------------------------------------------------- |
 * | only the six keys below                            | a misspelt key would be ignored, and TLS weaker than meant    |
 * | `ca`, `cert` are PEM certificates that parse       | a file path given instead of its content is the usual mistake |
 * | `cert` and `key` come together                     | mutual TLS needs both; either alone is ignored by the server  |
 * | `key` opens (with `passphrase`) and is `cert`'s    | a mismatch only shows as a handshake failure later            |
 * | `servername` is a host name                        | it is sent as SNI and verified against the certificate        |
 * | `rejectUnauthorized` is a boolean, `true` if unset | the server's certificate is verified unless a test says not   |
 *
 * No message shows a passphrase or a key: only which option is wrong and how to fix it.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { checkBoolean, checkName, checkOptionsObject } from '../errors/config-checks';
import { MessagingConfigError } from '../errors/messaging.errors';

/** PEM text: the content of a file, as a string or the bytes `readFileSync()` returns. */
export type Pem = string | Buffer;

/**
 * TLS settings of a broker connection, handed to Node's `tls.connect()`. Every certificate and key
 * is PEM content, not a file path: `readFileSync('ca.pem')`. Mutual TLS needs both `cert` and `key`.
 *
 * @example
 * new RedisStreamsBackend({
 *   url: 'rediss://app:secret@redis.internal:6380',
 *   tls: {
 *     ca: readFileSync('ca.pem'),
 *     cert: readFileSync('client.pem'),
 *     key: readFileSync('client.key'),
 *   },
 * });
 */
export interface TlsOptions {
  /**
   * CA certificate(s) the server's certificate must chain to, PEM (a private CA).
   * @default Node's public CAs (and `NODE_EXTRA_CA_CERTS`)
   */
  readonly ca?: Pem | readonly Pem[];
  /** Client certificate for mutual TLS (a server that verifies clients), PEM; needs `key`. */
  readonly cert?: Pem;
  /** Private key of `cert`, PEM; needs `cert`. */
  readonly key?: Pem;
  /** Passphrase of an encrypted `key`. */
  readonly passphrase?: string;
  /**
   * Host name the server's certificate must name (and sent as SNI), when the URL's host is not one
   * of its names: a server reached by IP address, through a tunnel or a load balancer.
   * @default the host of the URL
   */
  readonly servername?: string;
  /**
   * Verify the server's certificate. Never turn this off outside a test.
   * @default true
   */
  readonly rejectUnauthorized?: boolean;
}

/** {@link TlsOptions} checked: only the keys given, and `rejectUnauthorized` always set. */
export interface ResolvedTlsOptions {
  readonly ca?: Pem | Pem[];
  readonly cert?: Pem;
  readonly key?: Pem;
  readonly passphrase?: string;
  readonly servername?: string;
  readonly rejectUnauthorized: boolean;
}

const TLS_KEYS: readonly (keyof TlsOptions)[] = [
  'ca',
  'cert',
  'key',
  'passphrase',
  'servername',
  'rejectUnauthorized',
];

const CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Checks `value` (the `tls` option of the backend named `where`) and returns what `tls.connect()`
 * takes, or undefined when it is not given. Throws {@link MessagingConfigError} naming the option and
 * the fix.
 */
export function resolveTlsOptions(
  value: TlsOptions | undefined,
  where: string,
): ResolvedTlsOptions | undefined {
  const o = checkOptionsObject(value, TLS_KEYS, `${where}: tls`);
  if (o === undefined) return undefined;
  if ((o.cert === undefined) !== (o.key === undefined)) {
    const [given, missing] = o.cert === undefined ? ['key', 'cert'] : ['cert', 'key'];
    throw new MessagingConfigError(
      `${where}: tls.${given} is set without tls.${missing}. Mutual TLS needs both the client certificate and its private key.`,
    );
  }
  if (o.passphrase !== undefined) {
    // Never shown: it is a secret.
    if (typeof o.passphrase !== 'string' || o.passphrase.length === 0) {
      throw new MessagingConfigError(
        `${where}: tls.passphrase must be a non-empty string (the passphrase of tls.key).`,
      );
    }
    if (o.key === undefined) {
      throw new MessagingConfigError(
        `${where}: tls.passphrase is set without tls.key: it opens an encrypted tls.key, give it with tls.key only.`,
      );
    }
  }
  const ca = o.ca === undefined ? undefined : checkCas(o.ca, `${where}: tls.ca`);
  if (o.cert !== undefined && o.key !== undefined) {
    const [cert] = certificatesOf(o.cert, `${where}: tls.cert`);
    if (!cert.checkPrivateKey(privateKeyOf(o.key, o.passphrase, where))) {
      throw new MessagingConfigError(
        `${where}: tls.key is not the private key of tls.cert (${cert.subject.replace(/\n/g, ', ')}). Give the key the certificate was issued for.`,
      );
    }
  }
  const servername = checkName(o.servername, `${where}: tls.servername`, 253);
  if (servername !== undefined && !/^[A-Za-z0-9._-]+$/.test(servername)) {
    throw new MessagingConfigError(
      `${where}: tls.servername must be a host name such as 'broker.internal', got ${JSON.stringify(servername)}.`,
    );
  }
  const resolved = {
    ca,
    cert: o.cert,
    key: o.key,
    passphrase: o.passphrase,
    servername,
    rejectUnauthorized: checkBoolean(
      o.rejectUnauthorized,
      true,
      `${where}: tls.rejectUnauthorized`,
    ),
  };
  // Only the keys given: an undefined one would override the client's own default (the URL's host
  // as servername) where the options are assigned over it.
  return Object.fromEntries(
    Object.entries(resolved).filter(([, v]) => v !== undefined),
  ) as unknown as ResolvedTlsOptions;
}

/** `tls.ca`, one PEM or a list of them, each holding readable certificates. */
function checkCas(value: unknown, where: string): Pem | Pem[] {
  if (!Array.isArray(value)) {
    certificatesOf(value, where);
    return value as Pem;
  }
  if (value.length === 0) {
    throw new MessagingConfigError(
      `${where} is an empty list. Give the CA certificate(s) PEM, or leave tls.ca out to trust Node's public CAs.`,
    );
  }
  value.forEach((ca, i) => certificatesOf(ca, `${where}[${i}]`));
  return [...(value as Pem[])];
}

/** The certificates of one PEM value; throws naming `where` when it holds none, or a broken one. */
function certificatesOf(value: unknown, where: string): [X509Certificate, ...X509Certificate[]] {
  const text = pemText(value, where, 'certificate');
  const blocks = text.match(CERTIFICATE) ?? [];
  if (blocks.length === 0) throw notPem(text, where, 'certificate', 'CERTIFICATE', true);
  const certificates = blocks.map((block) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new MessagingConfigError(
        `${where} holds a certificate that cannot be read (${(error as Error).message}): give the PEM of a certificate as openssl wrote it.`,
      );
    }
  });
  return certificates as [X509Certificate, ...X509Certificate[]];
}

function privateKeyOf(value: unknown, passphrase: string | undefined, where: string): KeyObject {
  const text = pemText(value, `${where}: tls.key`, 'private key');
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    throw notPem(text, `${where}: tls.key`, 'private key', 'PRIVATE KEY', false);
  }
  if (passphrase === undefined && /ENCRYPTED/.test(text)) {
    throw new MessagingConfigError(`${where}: tls.key is encrypted: give its tls.passphrase.`);
  }
  try {
    return createPrivateKey({ key: text, passphrase });
  } catch (error) {
    throw new MessagingConfigError(
      `${where}: tls.key cannot be read (${(error as Error).message})` +
        (passphrase === undefined
          ? ': give the PEM of a private key as openssl wrote it.'
          : ': check tls.passphrase.'),
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

/**
 * A PEM option that holds no PEM block: most often a file path given instead of its content. The
 * path is shown for a certificate (public), never for a key (its value may be the key itself).
 */
function notPem(
  text: string,
  where: string,
  what: string,
  marker: string,
  show: boolean,
): MessagingConfigError {
  const path = text.length < 1024 && !/\s/.test(text.trim()) && /[/\\.]/.test(text);
  if (!path) {
    return new MessagingConfigError(
      `${where} is not a ${what} PEM (no '-----BEGIN ${marker}-----' line): give its PEM content.`,
    );
  }
  const shown = show ? `'${text.trim()}'` : 'path';
  return new MessagingConfigError(
    `${where} looks like a file path${show ? ` (${shown})` : ''}: give the ${what} itself, readFileSync(${shown}).`,
  );
}
