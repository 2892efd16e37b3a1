/**
 * The `tls` option of {@link NatsBackend}, checked when the backend is constructed: a certificate
 * or key that cannot be read, a file path given instead of its content, a client certificate
 * without its key (or with another one) fail at start-up with what to fix, not at the first
 * connection as a handshake error.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { checkBoolean, checkName, checkOptionsObject } from '../../errors/config-checks';
import { MessagingConfigError } from '../../errors/messaging.errors';

/** PEM text, as a string or the bytes of a file read with `readFileSync()`. */
export type Pem = string | Buffer;

/**
 * TLS of the connection to NATS, handed to Node's `tls.connect()`. Setting it (even `{}`) requires
 * TLS from every server, as a `tls://` URL does; the server's certificate is verified.
 *
 * @example
 * new NatsBackend({
 *   servers: 'tls://nats.internal:4222',
 *   tls: { ca: readFileSync('ca.pem'), cert: readFileSync('client.pem'), key: readFileSync('client-key.pem') },
 * });
 */
export interface NatsTlsOptions {
  /**
   * CA certificate(s) the server's certificate must chain to, PEM (a private CA). Without it,
   * Node's list of public CAs.
   */
  readonly ca?: Pem | readonly Pem[];
  /** Client certificate, PEM, for a server that verifies clients (`verify: true`); with `key`. */
  readonly cert?: Pem;
  /** Private key of `cert`, PEM. */
  readonly key?: Pem;
  /** Passphrase of an encrypted `key`. */
  readonly passphrase?: string;
  /**
   * Host name the server's certificate must name (and sent as SNI), when the URL's host is not
   * one of its names: a server reached by IP address, through a tunnel or a load balancer.
   * @default the host of the server URL
   */
  readonly servername?: string;
  /**
   * Verify the server's certificate. Never turn this off outside a test.
   * @default true
   */
  readonly rejectUnauthorized?: boolean;
}

/** {@link NatsTlsOptions} checked: what the client passes to `tls.connect()`. */
export interface ResolvedNatsTls {
  readonly ca?: Pem | Pem[];
  readonly cert?: Pem;
  readonly key?: Pem;
  readonly passphrase?: string;
  readonly servername?: string;
  readonly rejectUnauthorized?: boolean;
}

const KEYS: readonly (keyof NatsTlsOptions)[] = [
  'ca',
  'cert',
  'key',
  'passphrase',
  'servername',
  'rejectUnauthorized',
];

/**
 * Checks `value` (the `tls` option). `required` (a `tls://` server) makes TLS required without it.
 * Undefined when neither asks for TLS (the client still upgrades when a server requires it).
 */
export function resolveNatsTls(
  value: NatsTlsOptions | undefined,
  required: boolean,
  where: string,
): ResolvedNatsTls | undefined {
  const tls = checkOptionsObject(value, KEYS, where);
  if (!tls) return required ? {} : undefined;
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new MessagingConfigError(
      `${where}: cert and key go together (a client certificate and its private key); set both or neither`,
    );
  }
  const ca =
    tls.ca === undefined
      ? undefined
      : Array.isArray(tls.ca)
        ? (tls.ca as readonly Pem[]).map((c, i) => certificate(c, `${where}.ca[${i}]`).pem)
        : certificate(tls.ca as Pem, `${where}.ca`).pem;
  if (
    tls.passphrase !== undefined &&
    (typeof tls.passphrase !== 'string' || tls.passphrase.length === 0)
  ) {
    // Not shown: it is a secret.
    throw new MessagingConfigError(`${where}.passphrase must be a non-empty string`);
  }
  const passphrase = tls.passphrase;
  if (tls.cert !== undefined && tls.key !== undefined) {
    const cert = certificate(tls.cert, `${where}.cert`);
    const key = privateKey(tls.key, passphrase, `${where}.key`);
    if (!cert.x509.checkPrivateKey(key)) {
      throw new MessagingConfigError(
        `${where}: key is not the private key of cert (${cert.x509.subject.replace(/\n/g, ', ')}); give the key the certificate was made for`,
      );
    }
  }
  const servername = checkName(tls.servername, `${where}.servername`, 253);
  if (servername !== undefined && !/^[A-Za-z0-9.-]+$/.test(servername)) {
    throw new MessagingConfigError(
      `${where}.servername must be a host name such as 'nats.internal', got ${JSON.stringify(servername)}`,
    );
  }
  return {
    ca,
    cert: tls.cert,
    key: tls.key,
    passphrase,
    servername,
    rejectUnauthorized: checkBoolean(tls.rejectUnauthorized, true, `${where}.rejectUnauthorized`),
  };
}

/** What a PEM option holds when it is not PEM: a hint at the fix. */
function notPem(
  value: unknown,
  what: string,
  where: string,
  secret: boolean,
): MessagingConfigError {
  const text = typeof value === 'string' ? value : '';
  const path = !secret && text.length > 0 && text.length < 512 && !/[\r\n]/.test(text);
  return new MessagingConfigError(
    `${where} must be the PEM text of ${what} (-----BEGIN …), as a string or a Buffer` +
      (path
        ? `, got ${JSON.stringify(text)}: to use a file, pass its content, readFileSync(${JSON.stringify(text)})`
        : `, got ${typeof value === 'string' ? 'a string without a PEM block' : typeof value}`),
  );
}

function isPem(value: unknown): value is Pem {
  return (
    (typeof value === 'string' || Buffer.isBuffer(value)) &&
    value.toString().includes('-----BEGIN ')
  );
}

function certificate(value: Pem, where: string): { pem: Pem; x509: X509Certificate } {
  if (!isPem(value)) throw notPem(value, 'a certificate', where, false);
  try {
    return { pem: value, x509: new X509Certificate(value) };
  } catch (error) {
    throw new MessagingConfigError(
      `${where} holds no readable certificate (${(error as Error).message}); give the PEM of a certificate (-----BEGIN CERTIFICATE-----)`,
    );
  }
}

function privateKey(value: Pem, passphrase: string | undefined, where: string): KeyObject {
  if (!isPem(value)) throw notPem(value, 'a private key', where, true);
  try {
    return createPrivateKey({ key: value, passphrase });
  } catch (error) {
    const encrypted = value.toString().includes('ENCRYPTED');
    throw new MessagingConfigError(
      `${where} cannot be read (${(error as Error).message})` +
        (encrypted
          ? passphrase === undefined
            ? ': it is encrypted; give its passphrase in tls.passphrase'
            : ': check tls.passphrase'
          : '; give the PEM of a private key (-----BEGIN PRIVATE KEY-----)'),
    );
  }
}
