/**
 * The `servers` of {@link NatsBackend} as the NATS client gets them: without credentials. nats.js
 * ignores the user info of a URL (it connects with `user`/`pass`/`token` only) and its errors may
 * show the URLs it was given, so a password in a URL was both useless and a leak. Here each URL is
 * split into its server and its credentials, which go to the client as options and nowhere else:
 *
 * | written                          | server                | credentials                  |
 * | -------------------------------- | --------------------- | ---------------------------- |
 * | `nats://alice:s3cr%40t@h:4222`   | `nats://h:4222`       | user `alice`, pass `s3cr@t`  |
 * | `nats://alice:p@ss w/rd@h`       | `nats://h`            | user `alice`, pass `p@ss w/rd` (everything up to the last `@`) |
 * | `tls://t0ken@h:4443`             | `tls://h:4443`        | token `t0ken`                |
 * | `h:4222`                         | `h:4222`              | none                         |
 *
 * User info is percent-decoded as in any URL (`%40` is `@`); a raw `%` that starts no escape is
 * kept as it is. A NATS URL has no path, so every `@` belongs to the user info: a password may hold
 * `@`, `:`, `/`, `#`, `?`, quotes or spaces as they are.
 */
import { MessagingConfigError } from '../../errors/messaging.errors';

/** The credentials of a server URL: a user and password, or a token. */
export interface NatsCredentials {
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
}

/** A server URL split by {@link splitServer}. */
export interface NatsServer {
  /** The URL without credentials: what the client and every message get. */
  readonly server: string;
  readonly credentials?: NatsCredentials;
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
/** A host (name, IPv4, or bracketed IPv6) and an optional port, maybe a trailing `/`. */
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/?#[\]@]+)(:\d{1,5})?\/?$/;
const SCHEMES = new Set(['nats', 'tls', 'ws', 'wss']);

/**
 * `server` with everything between its scheme and its last `@` replaced by `***`: safe to show
 * whatever the password holds (a URL parser would stop at a `/` or `#` in it and show the rest).
 */
export function maskUserInfo(server: string): string {
  const at = server.lastIndexOf('@');
  if (at < 0) return server;
  return `${SCHEME.exec(server)?.[0] ?? ''}***${server.slice(at)}`;
}

/**
 * Splits a server URL (`nats://`, `tls://`, `ws://`, `wss://`, or a bare `host[:port]`) into its
 * server and credentials; undefined when it is no such URL.
 */
export function splitServer(text: string): NatsServer | undefined {
  const scheme = SCHEME.exec(text);
  if (!scheme) return HOST_PORT.test(text) ? { server: text } : undefined;
  if (!SCHEMES.has(scheme[1].toLowerCase())) return undefined;
  const rest = text.slice(scheme[0].length);
  const at = rest.lastIndexOf('@');
  const hostPort = rest.slice(at + 1);
  if (!HOST_PORT.test(hostPort)) return undefined;
  const server = `${scheme[1].toLowerCase()}://${hostPort.replace(/\/$/, '')}`;
  const info = at < 0 ? '' : rest.slice(0, at);
  if (info.length === 0) return { server };
  const colon = info.indexOf(':');
  if (colon < 0) return { server, credentials: { token: decode(info) } };
  return {
    server,
    credentials: { user: decode(info.slice(0, colon)), pass: decode(info.slice(colon + 1)) },
  };
}

/** Percent-decodes user info; a `%` that starts no valid escape is kept as it is. */
function decode(text: string): string {
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    return text.replace(/%[0-9A-Fa-f]{2}/g, (escape) => {
      try {
        return decodeURIComponent(escape);
      } catch {
        return escape;
      }
    });
  }
}

/** The servers without credentials, and the one set of credentials their URLs carry. */
export interface ResolvedServers {
  readonly servers: readonly string[];
  readonly credentials?: NatsCredentials;
}

/**
 * Checks `value` (`servers` of the options) and splits off the credentials of its URLs. Throws a
 * `MessagingConfigError` that names the fix, and never shows a password.
 */
export function resolveServers(value: unknown, fallback: string, where: string): ResolvedServers {
  if (value === undefined) return { servers: [fallback] };
  const list: unknown = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0) {
    throw new MessagingConfigError(
      `${where}: servers must be a URL string such as '${fallback}' or a non-empty array of them, got ${showMasked(value)}`,
    );
  }
  const servers: string[] = [];
  let credentials: NatsCredentials | undefined;
  let from: string | undefined;
  for (const item of list as unknown[]) {
    const split = typeof item === 'string' ? splitServer(item) : undefined;
    if (!split) {
      throw new MessagingConfigError(
        `${where}: servers has ${showMasked(item)}, which is not a NATS URL; write it as '${fallback}' ` +
          "(tls:// for TLS), with credentials as 'nats://user:password@host:4222' or in user and pass",
      );
    }
    servers.push(split.server);
    if (!split.credentials) continue;
    if (credentials && !sameCredentials(credentials, split.credentials)) {
      throw new MessagingConfigError(
        `${where}: servers ${from} and ${maskUserInfo(item as string)} carry different credentials; ` +
          'a NATS connection uses one set for every server: give it once, in user and pass (or token)',
      );
    }
    credentials = split.credentials;
    from = maskUserInfo(item as string);
  }
  const schemes = new Set(
    servers.map((s) => (/^(tls|nats):/i.exec(s)?.[1] ?? 'nats').toLowerCase()),
  );
  if (schemes.size > 1) {
    throw new MessagingConfigError(
      `${where}: servers mixes tls:// and nats:// URLs, but TLS applies to the whole NATS connection: ` +
        'write every URL as tls:// (or set tls), or every one as nats://',
    );
  }
  return { servers, credentials };
}

function sameCredentials(a: NatsCredentials, b: NatsCredentials): boolean {
  return a.user === b.user && a.pass === b.pass && a.token === b.token;
}

/** `value` as JSON for an error, each string in it with its user info masked. */
function showMasked(value: unknown): string {
  const masked = Array.isArray(value)
    ? value.map((v: unknown) => (typeof v === 'string' ? maskUserInfo(v) : v))
    : typeof value === 'string'
      ? maskUserInfo(value)
      : value;
  return String(JSON.stringify(masked));
}

/**
 * `text` with each of `secrets` (as written, and percent-encoded) replaced by `***`: whatever a
 * client or server error repeats of them, it does not reach an error or a log.
 */
export function maskSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const secret of secrets) {
    if (!secret) continue;
    for (const form of new Set([secret, encodeURIComponent(secret)]))
      out = out.split(form).join('***');
  }
  return out;
}
