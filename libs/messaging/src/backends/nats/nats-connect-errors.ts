/**
 * What a failed connection attempt means, and what to do about it: one pure decision over the
 * client's error, so that every connect error of {@link NatsBackend} names its cause and its fix.
 *
 * | cause (the client's error)                                   | again? | fix                                                  |
 * | ------------------------------------------------------------ | ------ | ---------------------------------------------------- |
 * | credentials refused (`Authorization Violation`, expired)      | no     | the credentials: user/pass, token, or the URL's user info |
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
