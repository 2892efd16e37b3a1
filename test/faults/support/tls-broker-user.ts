/**
 * A private vhost and a private user on the shared broker for the TLS fault spec, so the password
 * the spec hunts for in logs is distinctive (not `guest`). Created with `rabbitmqctl`, full rights on
 * that vhost only; `remove()` deletes both (the vhost with every queue and exchange in it). Nothing
 * outside them is touched. A failed `rabbitmqctl` call is reported without its command line, which
 * would hold the password.
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface BrokerUser {
  readonly vhost: string;
  readonly user: string;
  /** The user's password, raw. Holds URL-reserved characters on purpose. */
  readonly password: string;
  /** A substring of `password` that no other text of the run could hold by chance. */
  readonly marker: string;
  /** `amqps://user:password@host:port/vhost`, password percent-encoded. */
  url(host: string, port: number, password?: string): string;
  remove(): Promise<void>;
}

async function ctl(args: string[], what: string): Promise<void> {
  try {
    await exec('rabbitmqctl', args, { timeout: 60_000 });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    // Not chained as `cause`: the caught error's message holds the command line, password included.
    // eslint-disable-next-line preserve-caught-error
    throw new Error(`rabbitmqctl ${what} failed: ${stderr.trim()}`);
  }
}

/**
 * A distinctive secret: `<prefix><24 hex>` then `tail`, by default `@/:`, which a URL must
 * percent-encode. (No backtick or `$`: the /usr/sbin/rabbitmqctl wrapper passes its arguments
 * through `su -c "..."`, where the shell would expand them.)
 */
export function distinctiveSecret(
  prefix: string,
  tail = '@x/y:z',
): { password: string; marker: string } {
  const marker = `${prefix}${randomBytes(12).toString('hex')}`;
  return { password: `${marker}${tail}`, marker };
}

/** Creates the vhost and the user (full permissions on the vhost only); see {@link distinctiveSecret}. */
export async function createBrokerUser(passwordTail?: string): Promise<BrokerUser> {
  const run = randomUUID().slice(0, 8);
  const vhost = `faults-tls-${run}`;
  const user = `faults-tls-${run}`;
  const { password, marker } = distinctiveSecret('TlsPw', passwordTail);
  await ctl(['add_vhost', vhost], 'add_vhost');
  try {
    await ctl(['add_user', user, password], 'add_user');
    await ctl(['set_permissions', '-p', vhost, user, '.*', '.*', '.*'], 'set_permissions');
  } catch (error) {
    await ctl(['delete_user', user], 'delete_user').catch(() => undefined);
    await ctl(['delete_vhost', vhost], 'delete_vhost').catch(() => undefined);
    throw error;
  }
  return {
    vhost,
    user,
    password,
    marker,
    url: (host, port, pw = password) =>
      `amqps://${encodeURIComponent(user)}:${encodeURIComponent(pw)}@${host}:${port}/${encodeURIComponent(vhost)}`,
    remove: async () => {
      await ctl(['delete_vhost', vhost], 'delete_vhost');
      await ctl(['delete_user', user], 'delete_user');
    },
  };
}
