/**
 * What a failed connection attempt means, and what to do about it: one pure decision over the
 * client's error, so that every connect error of {@link NatsBackend} names its cause and its fix.
 *
 * | cause (the client's error)                                   | again? | fix                                                  |
 * | ------------------------------------------------------------ | ------ | ---------------------------------------------------- |
 * | credentials refused (`Authorization Violation`, expired)      | no     | the credentials: user/pass, token, or the URL's user info |
 * | certificate not trusted (self-signed, unknown issuer)        | no     | `tls.ca`: the CA that signed the server's certificate |
 * | certificate for another name                                 | no     | a host the certificate names, or `tls.servername`    |
 * | certificate expired or not yet valid                         | no     | the server's certificate, or this host's clock       |
 * | client certificate required or refused by the server         | no     | `tls.cert` and `tls.key`, signed by a CA the server trusts |
 * | TLS asked for, the server has none                           | no     | `nats://` without `tls`, or TLS on the server        |
 * | anything else (refused, timed out, no such host)             | yes    | is `nats-server -js` running there; `servers`; `connectTimeoutMs` |
 *
 * "again? no": trying again with the same settings cannot succeed, so `connect()` rejects at once
 * instead of waiting out `connectTimeoutMs`.
 */

/** The meaning of a failed connection attempt. */
export interface ConnectFailure {
  /** Trying again with the same settings may succeed (the server may be starting). */
  readonly transient: boolean;
  /** What to change, as a sentence. */
  readonly fix: string;
}

/** Node's codes of a server certificate the client does not trust. */
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

const RULES: ReadonlyArray<{
  readonly matches: (code: string, text: string) => boolean;
  readonly failure: ConnectFailure;
}> = [
  {
    matches: (code, text) =>
      code === 'AuthorizationError' ||
      /authorization violation|authentication (timeout|expired)|user authentication/i.test(text),
    failure: {
      transient: false,
      fix:
        'The server refused the credentials: check user and pass (or token), or the user info of ' +
        'the server URL.',
    },
  },
  {
    matches: (code, text) =>
      UNTRUSTED.has(code) || /self[- ]signed|unable to (verify|get (local )?issuer)/i.test(text),
    failure: {
      transient: false,
      fix:
        "The server's certificate is not trusted: give the CA that signed it in tls.ca " +
        "(new NatsBackend({ tls: { ca: readFileSync('ca.pem') } })).",
    },
  },
  {
    matches: (code, text) =>
      code === 'ERR_TLS_CERT_ALTNAME_INVALID' || /does not match certificate/i.test(text),
    failure: {
      transient: false,
      fix:
        "The server's certificate is made out to another name: connect by a host name it lists, " +
        'or set tls.servername to one of them.',
    },
  },
  {
    matches: (code, text) =>
      code === 'CERT_HAS_EXPIRED' ||
      code === 'CERT_NOT_YET_VALID' ||
      /certificate (has expired|is not yet valid)/i.test(text),
    failure: {
      transient: false,
      fix: "The server's certificate is out of its validity period: renew it, or check this host's clock.",
    },
  },
  {
    matches: (code, text) =>
      /ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN)/.test(code) ||
      /certificate required|alert (bad certificate|unknown ca|certificate unknown)/i.test(text),
    failure: {
      transient: false,
      fix:
        'The server verifies clients and refused this one: set tls.cert and tls.key to a client ' +
        'certificate signed by a CA the server trusts.',
    },
  },
  {
    matches: (_code, text) => /does not support 'tls'|tls.*not available/i.test(text),
    failure: {
      transient: false,
      fix:
        'The server has no TLS: connect with nats:// URLs and without tls, or enable TLS on the ' +
        'server.',
    },
  },
];

const UNREACHABLE: ConnectFailure = {
  transient: true,
  fix:
    'Is nats-server running there with JetStream (`nats-server -js`)? Check `servers`, or raise ' +
    '`connectTimeoutMs`.',
};

/** What the client's `error` (of a connection attempt) means; see the table above. */
export function explainConnectFailure(error: unknown): ConnectFailure {
  const codes: string[] = [];
  const texts: string[] = [];
  // The client wraps Node's error (with its code) as its own error's cause.
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    const { code, name, message, cause } = e as {
      code?: unknown;
      name?: unknown;
      message?: unknown;
      cause?: unknown;
    };
    if (typeof code === 'string') codes.push(code);
    if (typeof name === 'string') codes.push(name);
    texts.push(typeof message === 'string' ? message : typeof e === 'string' ? e : '');
    e = cause;
  }
  const text = texts.join(' | ');
  for (const rule of RULES) {
    if (codes.some((code) => rule.matches(code, text)) || rule.matches('', text))
      return rule.failure;
  }
  return UNREACHABLE;
}
