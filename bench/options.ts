/**
 * The command line of `npm run bench` (its options are listed at the top of run.ts), and the
 * brokers' URLs from the environment.
 */
import * as plan from './plan';
import type { Broker, QueueType } from './shared/protocol';

/** The options of one run (see the comment at the top of run.ts). */
export interface Options {
  quick: boolean;
  runs: number;
  backlogRuns: number;
  messages?: number;
  inFlight?: number;
  only: string[];
  workloads: string[];
  writeDocs?: boolean;
  /** Quick mode: messages of a gated fire-and-forget run. */
  gateMessages: number;
  /** False: the gate is printed, not judged (`--no-gate`). */
  gate: boolean;
  thirdParty: QueueType[];
  /** `--bare-handlers`: the experiment of bench/experiments/bare-handlers.ts (never written to docs). */
  bareHandlers: boolean;
  /** Each broker's URL (`BROKER_URL`, `REDIS_URL`, `NATS_URL`). */
  urls: Record<Broker, string>;
}

/** Parses the command line; throws on an unknown option or a bad number. */
export function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    quick: false,
    runs: 3,
    backlogRuns: 1,
    only: [],
    workloads: [],
    gateMessages: plan.GATE_MESSAGES,
    gate: true,
    thirdParty: ['classic'],
    bareHandlers: false,
    urls: {
      rabbitmq: process.env[plan.BROKERS.rabbitmq.env] || plan.BROKERS.rabbitmq.url,
      redis: process.env[plan.BROKERS.redis.env] || plan.BROKERS.redis.url,
      nats: process.env[plan.BROKERS.nats.env] || plan.BROKERS.nats.url,
    },
  };
  let runs: number | undefined;
  const list = (v: string | undefined): string[] => (v ?? '').split(',').filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => argv[++i] ?? '';
    if (a === '--quick') o.quick = true;
    else if (a === '--runs') runs = Number(value());
    else if (a === '--backlog-runs') o.backlogRuns = Number(value());
    else if (a === '--messages') o.messages = Number(value());
    else if (a === '--in-flight') o.inFlight = Number(value());
    else if (a === '--only') o.only.push(...list(value()));
    else if (a === '--workload') o.workloads.push(...list(value()));
    else if (a === '--write-docs') o.writeDocs = true;
    else if (a === '--no-docs') o.writeDocs = false;
    else if (a === '--gate-messages') o.gateMessages = Number(value());
    else if (a === '--no-gate') o.gate = false;
    else if (a === '--bare-handlers') o.bareHandlers = true;
    else if (a === '--third-party-queues') o.thirdParty = list(value()) as QueueType[];
    else throw new Error(`unknown option ${a} (see the comment at the top of bench/run.ts)`);
  }
  o.runs = runs ?? (o.quick ? plan.GATE_RUNS : 3);
  if (
    !(o.runs >= 1) ||
    !(o.gateMessages >= 1) ||
    (o.messages !== undefined && !(o.messages >= 1)) ||
    (o.inFlight !== undefined && !(o.inFlight >= 1))
  ) {
    throw new Error('--runs, --messages, --gate-messages and --in-flight take a positive number');
  }
  if (o.bareHandlers && (o.quick || o.writeDocs)) {
    throw new Error(
      '--bare-handlers is an experiment: its figures are never the gate nor the docs (drop --quick / --write-docs)',
    );
  }
  if (o.bareHandlers) o.writeDocs = false;
  return o;
}
