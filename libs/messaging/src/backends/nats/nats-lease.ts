/**
 * The lease of an exclusive subscription on JetStream (`SubscriptionSpec.exclusive`, a single active
 * consumer; timing and rules in `backend/lease-keeper.ts`). NATS 2.9 has no pinned consumer, so the
 * instances of the queue take turns holding subject `<prefix>.lease.<queue>` of stream
 * `<prefix>-leases` (one message per subject, dropped `EXCLUSIVE_LEASE_MS` after it was written):
 *
 * | Step          | How                                                                                |
 * | ------------- | ---------------------------------------------------------------------------------- |
 * | take          | publish with `Nats-Expected-Last-Subject-Sequence: 0`: only when nobody holds it   |
 * | renew         | publish expecting the sequence of our last message: only while nobody took it since |
 * | give back     | delete our last message by its sequence (never another's)                          |
 *
 * A holder's deliveries use an ack wait of {@link EXCLUSIVE_ACK_WAIT_MS} (kept alive while they
 * run): after a crash JetStream makes them due again before the lease expires, so the next holder
 * gets them first, in stream order, before anything new.
 */
import type { NatsSettlerContext } from './nats-settler';
import type { ResolvedNatsOptions } from './nats-backend.options';
import { ensureLeaseStream } from './nats-declarations';
import { natsNames } from './nats-topology';
import type { LeaseStore } from '../../backend/lease-keeper';
import { EXCLUSIVE_LEASE_MS, EXCLUSIVE_RENEW_MS } from '../../backend/exclusive';

/**
 * The ack wait of an exclusive route's consumers: a crashed holder's deliveries are due again
 * before its lease can expire (`EXCLUSIVE_LEASE_MS` after its last renewal, at least
 * `EXCLUSIVE_LEASE_MS - EXCLUSIVE_RENEW_MS` after the crash).
 */
export const EXCLUSIVE_ACK_WAIT_MS = (EXCLUSIVE_LEASE_MS - EXCLUSIVE_RENEW_MS) / 2;

/** The lease of exclusive queue `queue`, held under the name `holder`. */
export function natsLease(
  ctx: Pick<NatsSettlerContext, 'link' | 'current'>,
  options: ResolvedNatsOptions,
  queue: string,
  holder: string,
): LeaseStore {
  const names = natsNames(options.prefix);
  const subject = names.leaseSubject(queue);
  let declared = false;
  /** The sequence of our last lease message, while we hold it. */
  let seq: number | undefined;
  return {
    take: async () => {
      const { js, jsm } = await ctx.link();
      if (!declared) await ensureLeaseStream(jsm, options);
      declared = true;
      try {
        const expect = { lastSubjectSequence: seq ?? 0 };
        seq = (await js.publish(subject, holder, { expect })).seq;
        return true;
      } catch (error) {
        seq = undefined;
        if (/wrong last sequence/i.test(String((error as Error).message))) return false;
        throw error;
      }
    },
    release: async () => {
      const held = seq;
      seq = undefined;
      // Without a connection now, it expires by itself; gone already (expired, or taken over),
      // there is nothing to give back.
      const jsm = ctx.current()?.jsm;
      if (held !== undefined && jsm)
        await jsm.streams.deleteMessage(names.leases, held).catch(() => false);
    },
  };
}
