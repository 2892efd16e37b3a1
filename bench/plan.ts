/**
 * What `npm run bench` measures: the contenders, the workloads (full and quick sizes), which
 * workload applies to which contender, and the order children run in.
 */
import type { Broker, ContenderKind, QueueType, WorkloadSpec } from './shared/protocol';

export interface ContenderDef {
  /** `raw-quorum`, `ours-classic`, `nest-rmq-classic`, `raw-redis`, `ours-nats`, ... */
  readonly id: string;
  readonly label: string;
  readonly kind: ContenderKind;
  /** The broker it needs (undefined: none, InMemoryBackend). */
  readonly broker?: Broker;
  readonly queueType?: QueueType;
  /**
   * The raw client contender it is compared with: raw amqplib on the same queue type, raw ioredis,
   * raw nats.js.
   */
  readonly reference?: string;
  /** Compiled entry of its child process, relative to the repository root. */
  readonly entry: string;
}

const ROOT_DIST = 'dist/bench/bench/contenders';
export const GOLEVELUP_DIR = 'bench/golevelup';
const GOLEVELUP_ENTRY = `${GOLEVELUP_DIR}/dist/golevelup/src/golevelup.js`;

function amqp(
  kind: ContenderKind,
  queueType: QueueType,
  label: string,
  entry: string,
): ContenderDef {
  return {
    id: `${kind}-${queueType}`,
    label: `${label} (${queueType})`,
    kind,
    broker: 'rabbitmq',
    queueType,
    reference: kind === 'raw' ? undefined : `raw-${queueType}`,
    entry,
  };
}

/** How each broker is named in the report, and where the orchestrator finds it. */
export const BROKERS: Record<
  Broker,
  { readonly label: string; readonly env: string; readonly url: string }
> = {
  rabbitmq: { label: 'RabbitMQ', env: 'BROKER_URL', url: 'amqp://guest:guest@127.0.0.1:5672' },
  redis: { label: 'Redis Streams', env: 'REDIS_URL', url: 'redis://127.0.0.1:6379' },
  nats: { label: 'NATS JetStream', env: 'NATS_URL', url: 'nats://127.0.0.1:4222' },
};

/** `raw-<broker>` (its own client, the reference) and `ours-<broker>` (the library on it). */
function pair(broker: 'redis' | 'nats', raw: string, ours: string): ContenderDef[] {
  return [
    {
      id: `raw-${broker}`,
      label: raw,
      kind: 'raw',
      broker,
      entry: `${ROOT_DIST}/raw-${broker}.js`,
    },
    {
      id: `ours-${broker}`,
      label: ours,
      kind: 'ours',
      broker,
      reference: `raw-${broker}`,
      entry: `${ROOT_DIST}/ours.js`,
    },
  ];
}

/** Every contender, in the order of the report. */
export function contenders(thirdPartyQueueTypes: readonly QueueType[]): ContenderDef[] {
  const list: ContenderDef[] = [];
  for (const q of ['quorum', 'classic'] as const) {
    list.push(amqp('raw', q, 'raw amqplib', `${ROOT_DIST}/raw-amqplib.js`));
    list.push(amqp('ours', q, '@app/messaging AmqpBackend', `${ROOT_DIST}/ours.js`));
    if (thirdPartyQueueTypes.includes(q)) {
      list.push(amqp('nest-rmq', q, 'Nest Transport.RMQ', `${ROOT_DIST}/nest-rmq.js`));
      list.push(amqp('golevelup', q, '@golevelup/nestjs-rabbitmq', GOLEVELUP_ENTRY));
    }
  }
  list.push(...pair('redis', 'raw ioredis (Redis Streams)', '@app/messaging RedisStreamsBackend'));
  list.push(...pair('nats', 'raw nats.js (JetStream)', '@app/messaging NatsBackend'));
  list.push({
    id: 'ours-memory',
    label: '@app/messaging InMemoryBackend',
    kind: 'memory',
    entry: `${ROOT_DIST}/ours.js`,
  });
  return list;
}

export interface Sizes {
  /** Fire-and-forget with 256 B bodies and retry-heavy traffic (same count: their ratio is a target). */
  readonly messages: number;
  /** Fire-and-forget with 10 KiB bodies. */
  readonly largeMessages: number;
  readonly sequentialRequests: number;
  /** Requests at 100 in flight. */
  readonly requests: number;
  readonly backlog: number;
  readonly warmup: number;
}

/** Sizes derived from the 256 B message count (`--messages`). */
export function sizes(quick: boolean, messages?: number): Sizes {
  const n = messages ?? (quick ? 500 : 20_000);
  return {
    messages: n,
    largeMessages: Math.max(1, Math.round(n / 5)),
    sequentialRequests: Math.max(1, Math.round(n / 20)),
    requests: Math.max(1, Math.round(n / 2)),
    backlog: quick ? 2_000 : 200_000,
    warmup: quick ? 50 : 500,
  };
}

/** Every workload, in the order of the report. */
export function workloads(sizes: Sizes): WorkloadSpec[] {
  const ff = (bodyBytes: number, consumers: number): WorkloadSpec => ({
    name: `ff-${bodyBytes === 256 ? '256B' : '10KiB'}-x${consumers}`,
    kind: 'fire-and-forget',
    messages: bodyBytes > 1024 ? sizes.largeMessages : sizes.messages,
    bodyBytes,
    consumers,
    inFlight: 1000,
    warmup: sizes.warmup,
  });
  return [
    ff(256, 1),
    ff(10_240, 1),
    ff(256, 4),
    ff(10_240, 4),
    {
      name: 'rr-seq',
      kind: 'request-reply',
      messages: sizes.sequentialRequests,
      bodyBytes: 256,
      consumers: 1,
      inFlight: 1,
      warmup: Math.ceil(sizes.warmup / 10),
    },
    {
      name: 'rr-100',
      kind: 'request-reply',
      messages: sizes.requests,
      bodyBytes: 256,
      consumers: 1,
      inFlight: 100,
      warmup: sizes.warmup,
    },
    {
      name: 'retry',
      kind: 'retry',
      messages: sizes.messages,
      bodyBytes: 256,
      consumers: 1,
      inFlight: 1000,
      warmup: sizes.warmup,
      failEvery: 10,
    },
    {
      name: 'backlog',
      kind: 'backlog',
      messages: sizes.backlog,
      bodyBytes: 256,
      consumers: 1,
      // A larger window only to fill the backlog faster; the drain is what is measured.
      inFlight: 5000,
      slowHandlerMs: 1,
    },
  ];
}

/** How many times more messages InMemoryBackend handles than the broker contenders (full runs). */
export const MEMORY_SCALE = 10;

/**
 * The workload as `contender` runs it: InMemoryBackend handles {@link MEMORY_SCALE} times the
 * messages and warm-up in a full run, because at a few hundred thousand messages a second 20,000
 * would be over in a tenth of a second, mostly start-up and JIT warm-up rather than throughput.
 */
export function scaledFor(
  contender: ContenderDef,
  spec: WorkloadSpec,
  quick: boolean,
): WorkloadSpec {
  if (contender.kind !== 'memory' || quick || spec.kind === 'backlog') return spec;
  return {
    ...spec,
    messages: spec.messages * MEMORY_SCALE,
    warmup: (spec.warmup ?? 0) * MEMORY_SCALE,
  };
}

/** Why a workload does not apply to a contender, or undefined when it does. */
export function notApplicable(contender: ContenderDef, workload: WorkloadSpec): string | undefined {
  if (workload.kind === 'retry' && contender.kind === 'nest-rmq') return 'no retry feature';
  const amqp = contender.broker === 'rabbitmq';
  if (
    workload.kind === 'backlog' &&
    (!amqp || (contender.kind !== 'raw' && contender.kind !== 'ours'))
  ) {
    return 'backlog is measured on RabbitMQ only, for raw amqplib and AmqpBackend';
  }
  return undefined;
}

/** Hard time bound of a child running `specs`. */
export function timeLimitMs(specs: readonly WorkloadSpec[], quick: boolean): number {
  let ms = quick ? 10_000 : 20_000;
  for (const spec of specs) {
    const perMessage =
      spec.kind === 'request-reply' && spec.inFlight === 1
        ? 25
        : spec.kind === 'backlog'
          ? 1
          : spec.bodyBytes > 1024
            ? 4
            : 2;
    ms += (quick ? 4_000 : 10_000) + (spec.messages + (spec.warmup ?? 0)) * perMessage;
  }
  return ms;
}

/**
 * Whether `contender` is selected by `--only` tokens: an id (`ours-redis`), a kind (`raw`: every
 * raw client), an id's prefix (`nest-rmq`) or a broker (`redis`, `nats`, `rabbitmq`).
 */
export function selected(contender: ContenderDef, only: readonly string[]): boolean {
  if (only.length === 0) return true;
  return only.some(
    (t) =>
      contender.id === t ||
      contender.kind === t ||
      contender.broker === t ||
      contender.id.startsWith(`${t}-`),
  );
}
