import { randomUUID } from 'node:crypto';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';

/** Server of the NATS specs. */
export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

/** A prefix unique to one spec run (letters, digits and `-` only): every stream it makes carries it. */
export function natsRunPrefix(label: string): string {
  return `${label}-${randomUUID().slice(0, 8)}`;
}

/** A plain connection and JetStream manager, for specs that look at the server themselves. */
export async function natsAdmin(): Promise<{ nc: NatsConnection; jsm: JetStreamManager }> {
  const nc = await connect({ servers: NATS_URL });
  return { nc, jsm: await jetstreamManager(nc) };
}

/**
 * Deletes the streams of `prefix` (`<prefix>-messages`, `-delayed`, `-dead-letters`, and `-leases`
 * once an exclusive route made it) and with them their consumers. Only those: a prefix is unique per run. Resolves with the streams it deleted.
 */
export async function deleteNatsObjects(prefix: string): Promise<string[]> {
  const { nc, jsm } = await natsAdmin();
  const deleted: string[] = [];
  try {
    for (const suffix of ['messages', 'delayed', 'dead-letters', 'leases']) {
      const name = `${prefix}-${suffix}`;
      if (await jsm.streams.delete(name).catch(() => false)) deleted.push(name);
    }
  } finally {
    await nc.close();
  }
  return deleted;
}
