/**
 * Idempotent declarations of the streams and durable consumers that `nats-topology.ts` describes:
 * created when missing, safe when several processes declare them at once, and brought to the
 * limits (and `ack_wait`, `max_deliver`) this version asks for when they exist.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import type { ResolvedNatsOptions } from './nats-backend.options';
import { EXCLUSIVE_LEASE_MS } from '../../backend/exclusive';
import { natsNames } from './nats-topology';

const nanos = (ms: number): number => ms * 1_000_000;

/** Creates the three streams of `options.prefix` when missing (idempotent, safe across processes). */
export async function ensureStreams(
  jsm: JetStreamManager,
  options: ResolvedNatsOptions,
): Promise<void> {
  const names = natsNames(options.prefix);
  const window = (maxAgeMs: number) => nanos(duplicateWindowMs(options.ackWaitMs, maxAgeMs));
  const common = {
    num_replicas: options.replicas,
    storage: options.storage,
  } as const;
  await ensureStream(jsm, {
    ...common,
    name: names.messages,
    subjects: [`${options.prefix}.t.>`, `${options.prefix}.q.>`],
    retention: 'interest',
    discard: 'new',
    max_age: nanos(options.maxAgeMs),
    duplicate_window: window(options.maxAgeMs),
    max_bytes: options.maxBytes,
    max_msgs: options.maxMsgs,
  });
  await ensureStream(jsm, {
    ...common,
    name: names.delayed,
    subjects: [`${options.prefix}.d.>`],
    retention: 'workqueue',
    discard: 'new',
    duplicate_window: window(0),
  });
  await ensureStream(jsm, {
    ...common,
    name: names.deadLetters,
    subjects: [`${options.prefix}.dlq.>`],
    retention: 'limits',
    max_age: nanos(options.deadLetterMaxAgeMs),
    duplicate_window: window(options.deadLetterMaxAgeMs),
  });
}

/**
 * Creates the stream of exclusive queues' leases of `options.prefix` when missing: one message per
 * subject (the holder), dropped {@link EXCLUSIVE_LEASE_MS} after it was written (`nats-lease.ts`).
 */
export async function ensureLeaseStream(
  jsm: JetStreamManager,
  options: ResolvedNatsOptions,
): Promise<void> {
  await ensureStream(jsm, {
    name: natsNames(options.prefix).leases,
    subjects: [`${options.prefix}.lease.>`],
    num_replicas: options.replicas,
    storage: options.storage,
    retention: 'limits',
    max_msgs_per_subject: 1,
    max_age: nanos(EXCLUSIVE_LEASE_MS),
    duplicate_window: nanos(EXCLUSIVE_LEASE_MS),
  });
}

/** Shortest duplicate window of the streams: a copy written again after a crash is stored once. */
export const MIN_DUPLICATE_WINDOW_MS = 10 * 60_000;

/**
 * The streams' duplicate window: well above the ack wait (a copy is written again when its delivery
 * comes back, up to `ackWaitMs` later, maybe several times), at least 10 minutes, and no longer than
 * the stream's `max_age` when it has one (JetStream refuses a window longer than that).
 */
export function duplicateWindowMs(ackWaitMs: number, maxAgeMs: number): number {
  const wanted = Math.max(MIN_DUPLICATE_WINDOW_MS, 4 * ackWaitMs);
  return maxAgeMs > 0 ? Math.min(wanted, maxAgeMs) : wanted;
}

type StreamConfigIn = Parameters<JetStreamManager['streams']['add']>[0];

/** The limits (and window) `ensureStream` brings an existing stream to (the rest of its config stays). */
const LIMITS = ['max_age', 'duplicate_window', 'max_bytes', 'max_msgs'] as const;

async function ensureStream(jsm: JetStreamManager, config: StreamConfigIn): Promise<void> {
  try {
    const info = await jsm.streams.info(config.name);
    const changed = LIMITS.filter((k) => config[k] !== undefined && info.config[k] !== config[k]);
    if (changed.length > 0) {
      const limits = Object.fromEntries(changed.map((k) => [k, config[k]]));
      await jsm.streams.update(config.name, { ...info.config, ...limits });
    }
    return;
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  try {
    await jsm.streams.add(config);
  } catch (error) {
    // Another process created it meanwhile.
    if (!/already in use/i.test(String((error as Error).message))) throw error;
  }
}

/** A durable consumer's config as this backend declares it. */
export interface DurableSpec {
  readonly stream: string;
  readonly name: string;
  readonly filter: string;
  readonly description?: string;
  readonly maxAckPending: number;
  readonly maxDeliver: number;
  readonly ackWaitMs: number;
  /** `new` for routes (a new route never receives the past); `all` on the work-queue stream. */
  readonly deliverPolicy: 'new' | 'all';
}

/**
 * Creates a durable pull consumer unless it exists. An existing one keeps its filter, policies and
 * description (an external queue's consumer may have been made by someone else), but gets the
 * `ack_wait` and `max_deliver` of `spec`: they decide when and whether a delivery comes again.
 */
export async function ensureDurable(jsm: JetStreamManager, spec: DurableSpec): Promise<void> {
  let info: Awaited<ReturnType<JetStreamManager['consumers']['info']>>;
  try {
    info = await jsm.consumers.info(spec.stream, spec.name);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    try {
      await addDurable(jsm, spec);
      return;
    } catch (addError) {
      // Created meanwhile by another instance (maybe another version, with another description).
      if (!/already (exists|in use)/i.test(String((addError as Error).message))) throw addError;
      info = await jsm.consumers.info(spec.stream, spec.name);
    }
  }
  await updateDurable(jsm, spec, info.config);
}

/**
 * Brings an existing consumer's `ack_wait` and `max_deliver` to `spec` (a redeploy with another
 * `ackWaitMs`, or a consumer made by a version that let the server stop redelivering).
 */
async function updateDurable(
  jsm: JetStreamManager,
  spec: DurableSpec,
  config: { ack_wait?: number; max_deliver?: number },
): Promise<void> {
  const ackWait = nanos(spec.ackWaitMs);
  const sameDeliver =
    config.max_deliver === spec.maxDeliver ||
    (spec.maxDeliver <= 0 && (config.max_deliver ?? -1) <= 0);
  if (config.ack_wait === ackWait && sameDeliver) return;
  await jsm.consumers.update(spec.stream, spec.name, {
    ack_wait: ackWait,
    max_deliver: spec.maxDeliver,
  });
}

async function addDurable(jsm: JetStreamManager, spec: DurableSpec): Promise<void> {
  await jsm.consumers.add(spec.stream, {
    durable_name: spec.name,
    description: spec.description,
    filter_subject: spec.filter,
    ack_policy: 'explicit',
    deliver_policy: spec.deliverPolicy,
    ack_wait: nanos(spec.ackWaitMs),
    max_deliver: spec.maxDeliver,
    max_ack_pending: spec.maxAckPending,
  });
}

/** Whether a JetStream API error says the stream or consumer does not exist. */
export function isNotFound(error: unknown): boolean {
  const e = error as { code?: unknown; name?: unknown; message?: unknown } | undefined;
  return (
    e?.code === 10014 ||
    e?.code === 10059 ||
    e?.code === '404' ||
    (typeof e?.message === 'string' && /not found/i.test(e.message))
  );
}
