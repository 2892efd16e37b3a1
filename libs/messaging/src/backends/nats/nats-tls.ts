/**
 * TLS of {@link NatsBackend}, what is NATS's own: setting the `tls` option (even `{}`) requires TLS
 * from every server, as a `tls://` URL does, and a `tls://` URL requires it without the option. The
 * option itself, and its checks, are the shared `TlsOptions` (`backend/tls-options.ts`); why a TLS
 * connection failed when nats.js cannot say is `nats-tls-probe.ts`.
 */
import {
  resolveTlsOptions,
  type ResolvedTlsOptions,
  type TlsOptions,
} from '../../backend/tls-options';

/**
 * TLS of the connection to NATS: the shared {@link TlsOptions}. Setting it (even `{}`) requires TLS
 * from every server, as a `tls://` URL does; the server's certificate is verified.
 *
 * @example
 * new NatsBackend({
 *   servers: 'tls://nats.internal:4222',
 *   tls: { ca: readFileSync('ca.pem'), cert: readFileSync('client.pem'), key: readFileSync('client-key.pem') },
 * });
 */
export type NatsTlsOptions = TlsOptions;

/** {@link NatsTlsOptions} checked: what the client passes to `tls.connect()`. */
export type ResolvedNatsTls = ResolvedTlsOptions;

/**
 * Checks `value` (the `tls` option). `required` (a `tls://` server) makes TLS required without it.
 * Undefined when neither asks for TLS (the client still upgrades when a server requires it).
 */
export function resolveNatsTls(
  value: NatsTlsOptions | undefined,
  required: boolean,
  where: string,
): ResolvedNatsTls | undefined {
  return resolveTlsOptions(value ?? (required ? {} : undefined), where);
}
