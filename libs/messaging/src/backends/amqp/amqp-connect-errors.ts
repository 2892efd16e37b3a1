/**
 * Why a connection attempt failed, in words an operator can act on: what went wrong where, how to fix
 * it, and whether trying again can help. Read from the error the socket, TLS or amqplib gave:
 *
 * | cause                              | recognised by                                    | retried |
 * | ---------------------------------- | ------------------------------------------------ | ------- |
 * | the host name does not resolve     | `ENOTFOUND`, `EAI_AGAIN`                         | yes (1) |
 * | nothing listens on the port        | `ECONNREFUSED`                                   | yes (2) |
 * | no answer                          | `ETIMEDOUT`, `EHOSTUNREACH`, `ENETUNREACH`       | yes     |
 * | something else than AMQP answers   | a frame amqplib cannot read (an HTTP port's      | yes     |
 * |                                    | `HTTP/1.1 400` read as a frame size)             |         |
 * | closed during the handshake        | `ECONNRESET`, `EPIPE`, socket closed abruptly    | yes     |
 * | the login is refused               | 403 `ACCESS_REFUSED`                             | no      |
 * | the virtual host is refused        | a close answering `connection.open` (3)          | no      |
 * | the TLS certificate is not trusted | `ERR_TLS_*`, `CERT`, `SELF_SIGNED`, `UNABLE_TO_VERIFY` | no |
 * | ... or is for another host         | `ERR_TLS_CERT_ALTNAME_INVALID`, `altnames`       | no      |
 *
 * (1) DNS may catch up, as for a service just created. (2) The broker may be starting. (3) RabbitMQ's
 * 530: no such vhost, or no permission on it; amqplib keeps only "Expected ConnectionOpenOk; got
 * <ConnectionClose>", so the two cannot be told apart, and the fix names both.
 *
 * What is not retried fails `connect()` at once, before the first connection: retrying cannot fix
 * it. Nothing here holds a password: the fixes name the host, port, user and vhost only.
 */

/** What a failed attempt means: the fix to add to its message, and whether retrying can help. */
export interface ConnectDiagnosis {
  readonly fix: string;
  readonly permanent: boolean;
}

/** The broker a URL names, as amqplib reads it (user `guest` and vhost `/` by default). */
function target(url: string): { host: string; port: string; user: string; vhost: string } {
  const parsed = new URL(url);
  const tls = parsed.protocol === 'amqps:';
  const user = parsed.username || parsed.password ? decode(parsed.username) : 'guest';
  return {
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: parsed.port || (tls ? '5671' : '5672'),
    user,
    vhost: parsed.pathname.length > 1 ? decode(parsed.pathname.slice(1)) : '/',
  };
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** `word` as one shell argument. */
function shellWord(word: string): string {
  return /^[\w./:@%+=-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The fix for a failed attempt to connect to `url` (`timeoutMs`: how long one attempt may take). */
export function diagnoseConnectFailure(
  error: unknown,
  url: string,
  timeoutMs: number,
): ConnectDiagnosis {
  const { host, port, user, vhost } = target(url);
  const { code: rawCode, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  const code = typeof rawCode === 'string' ? rawCode : '';
  const text = typeof message === 'string' ? message : String(error);
  const where = `${host}:${port}`;
  const retry = (fix: string): ConnectDiagnosis => ({ fix, permanent: false });
  const stop = (fix: string): ConnectDiagnosis => ({ fix, permanent: true });

  if (/^(ENOTFOUND|EAI_AGAIN)$/.test(code) || /getaddrinfo/.test(text)) {
    return retry(`The host name '${host}' does not resolve: check the host in the URL.`);
  }
  if (code === 'ECONNREFUSED' || /ECONNREFUSED/.test(text)) {
    return retry(
      `Nothing accepts connections on ${where}: check the port (5672 for amqp://, 5671 for ` +
        'amqps://) and that RabbitMQ is running there.',
    );
  }
  if (/^(ETIMEDOUT|EHOSTUNREACH|ENETUNREACH)$/.test(code) || /ETIMEDOUT/.test(text)) {
    return retry(
      `No answer from ${where} within ${timeoutMs} ms: check the host and port, and that no ` +
        'firewall drops the connection.',
    );
  }
  if (/ACCESS[-_]REFUSED/.test(text)) {
    const remote = !['localhost', '127.0.0.1', '::1'].includes(host);
    const local =
      user === 'guest' && remote ? " (RabbitMQ lets 'guest' log in from localhost only)" : '';
    return stop(
      `RabbitMQ refused the login of user '${user}'${local}: check the user name and password ` +
        `in the URL (\`rabbitmqctl authenticate_user ${shellWord(user)} <password>\` tells whether ` +
        'they match).',
    );
  }
  if (/Expected ConnectionOpenOk; got <ConnectionClose|NOT[-_]ALLOWED/.test(text)) {
    const v = shellWord(vhost);
    return stop(
      `RabbitMQ refused to open virtual host '${vhost}' for user '${user}': it does not exist, ` +
        `or the user has no permissions on it (or its connection limit is reached). Create it ` +
        `with \`rabbitmqctl add_vhost ${v}\` and grant the user access with \`rabbitmqctl ` +
        `set_permissions -p ${v} ${shellWord(user)} '.*' '.*' '.*'\`, or fix the vhost in the URL.`,
    );
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || /altnames/.test(text)) {
    return stop(
      `The broker's TLS certificate is not for '${host}': connect by a name the certificate ` +
        'lists, or set tls.servername to one.',
    );
  }
  if (/^ERR_TLS_|CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code) || /certificate/i.test(text)) {
    return stop(
      "The broker's TLS certificate is not trusted: pass the certificate of the authority " +
        'that signed it in tls.ca.',
    );
  }
  if (/Frame size \d+ exceeds|frame/i.test(text)) {
    return retry(
      `What answers on ${where} is not an AMQP broker: check the port (5672 for amqp://, 5671 ` +
        'for amqps://; 15672 is the management web UI).',
    );
  }
  if (/^(ECONNRESET|EPIPE)$/.test(code) || /closed abruptly|ECONNRESET/.test(text)) {
    return retry(
      `${where} closed the connection during the handshake: check amqp:// against amqps:// ` +
        "for this port, and the broker's log.",
    );
  }
  return retry("Check the URL, and the broker's log.");
}
