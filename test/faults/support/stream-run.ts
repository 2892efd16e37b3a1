/**
 * `FaultRun` for Redis Streams and NATS JetStream: the same ledger, checker, consumer processes and
 * pass bar as the RabbitMQ scenarios (fault-run.ts), with the broker reached through the library's
 * own backends instead of amqplib. A run:
 *
 * 1. `StreamRun.start()`: a ledger dir, a producer (a Nest app in the test process,
 *    `MessagingModule.forRoot` + `MessagingPublisher` on the run's backend), a checker backend
 *    straight to the server, N consumer child processes (consumer-child.ts with `backend`).
 * 2. `load()`: publishes at a steady rate (`sent`, then `confirmed` or `rejected`).
 * 3. `settle()`: waits until every confirmed message is handled, or dead-lettered when expected.
 * 4. `finish()`: stops the consumers (SIGTERM), lists the dead letters with the backend's own
 *    `deadLetters.list` (`dead` rows), then counts what the broker still holds for the route
 *    (`pendingCount()`); if anything, a drain subscription takes it (`leftover` rows). Verdict.
 *
 * Every name carries the scenario and a run id (`prefix` of the backends), on a private server.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { Cluster, Redis } from 'ioredis';
import { type BrokerBackend, MessagingModule, MessagingPublisher } from '@app/messaging';
import type { RedisStreamsBackendOptions } from '@app/messaging/redis';
import { waitFor } from '@app/messaging/testing';
import { check, type CheckReport } from './checker';
import type { ConsumerConfig } from './consumer-child';
import { ConsumerProcess } from './consumer-process';
import { Ledger } from './ledger';
import type { LoadOptions } from './fault-run';
import {
  createStreamBackend,
  type StreamBackendSpec,
  withPrefix,
  withServer,
} from './stream-backends';

export interface StreamRunOptions {
  scenario: string;
  /** The backend of every party, pointed straight at the private server (the checker's URL). */
  backend: StreamBackendSpec;
  /** URL the producer and the consumers use instead (e.g. the chaos proxy's). */
  serviceUrl?: string;
  consumers: number;
  consumer?: Partial<ConsumerConfig>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class StreamRun {
  readonly ledger: Ledger;
  readonly service: string;
  readonly topic: string;
  readonly prefix: string;
  readonly consumers: ConsumerProcess[] = [];
  readonly producerErrors: Error[] = [];
  readonly producerStatuses: Array<{ status: string; at: number }> = [];
  private readonly spec: StreamBackendSpec;
  private readonly direct: StreamBackendSpec;
  private app?: INestApplication;
  private publisher?: MessagingPublisher;
  private producer?: BrokerBackend;
  private checker?: BrokerBackend;
  private sentCount = 0;
  private readonly poison = new Set<string>();
  readonly confirmedIds = new Set<string>();
  /** What the broker still held for the route when the consumers had stopped (`held()`). */
  heldAtEnd: Record<string, number> = {};

  private constructor(readonly options: StreamRunOptions) {
    const run = randomUUID().slice(0, 8);
    this.service = `${options.scenario}-${run}`;
    this.topic = `faults.${options.scenario}.${run}`;
    this.prefix = `faults-${options.scenario}-${run}`;
    this.ledger = new Ledger(mkdtempSync(join(tmpdir(), `faults-${options.scenario}-`)));
    this.direct = withPrefix(options.backend, this.prefix);
    this.spec = options.serviceUrl ? withServer(this.direct, options.serviceUrl) : this.direct;
  }

  static async start(options: StreamRunOptions): Promise<StreamRun> {
    const run = new StreamRun(options);
    await run.startProducer();
    for (let i = 0; i < options.consumers; i++) await run.startConsumer();
    return run;
  }

  get kind(): StreamBackendSpec['kind'] {
    return this.spec.kind;
  }

  /** The route's queue, `<service>.<topic>` (the consumer's only route). */
  get workQueue(): string {
    return `${this.service}.${this.topic}`;
  }

  /** The producer's backend (for its `status`). */
  get backend(): BrokerBackend {
    return this.producer!;
  }

  async startConsumer(extra: Partial<ConsumerConfig> = {}): Promise<ConsumerProcess> {
    const consumer = new ConsumerProcess({
      url: '',
      service: this.service,
      topic: this.topic,
      ledgerDir: this.ledger.dir,
      concurrency: 10,
      handlerMs: [5, 50],
      backend: this.spec,
      ...this.options.consumer,
      ...extra,
    });
    this.consumers.push(consumer);
    await consumer.ready;
    return consumer;
  }

  get live(): ConsumerProcess[] {
    return this.consumers.filter((c) => c.running);
  }

  private async startProducer(): Promise<void> {
    const backend = createStreamBackend(this.spec, `faults-producer-${this.service}`);
    this.producer = backend;
    backend.on('error', (e) => this.producerErrors.push(e));
    backend.on('status', (status) => this.producerStatuses.push({ status, at: Date.now() }));
    const moduleRef = await Test.createTestingModule({
      imports: [MessagingModule.forRoot({ service: `${this.service}-producer`, backend })],
    }).compile();
    this.app = moduleRef.createNestApplication({ logger: ['error'] });
    await this.app.init();
    this.publisher = this.app.get(MessagingPublisher);
  }

  /** The checker's own backend, straight to the server (dead letters, the final drain). */
  private async checkerBackend(): Promise<BrokerBackend> {
    if (!this.checker) {
      const backend = createStreamBackend(this.direct, `faults-checker-${this.service}`);
      backend.on('error', () => undefined);
      await backend.connect();
      this.checker = backend;
    }
    return this.checker;
  }

  /** Publishes one message through the library, recording `sent` and its outcome. */
  publish(
    seq: number,
    body: Record<string, unknown> = { seq },
    extra: { delayMs?: number } = {},
  ): Promise<void> {
    const id = randomUUID();
    if (body.poison) this.poison.add(id);
    this.ledger.record({ kind: 'sent', id, seq, at: Date.now() });
    this.sentCount++;
    return this.publisher!.publish({ topic: this.topic }, body, { messageId: id, ...extra }).then(
      () => {
        this.confirmedIds.add(id);
        this.ledger.record({ kind: 'confirmed', id, at: Date.now() });
      },
      (error: Error) =>
        this.ledger.record({
          kind: 'rejected',
          id,
          reason: error?.constructor?.name ?? 'unknown',
          error: String(error?.message ?? error),
          at: Date.now(),
        }),
    );
  }

  /**
   * Records a message written raw (not through the library, and confirmed by the server) so the
   * checker knows it was sent; `dead` when it must end dead-lettered rather than handled.
   */
  recordForeign(id: string, seq: number, { dead }: { dead: boolean }): void {
    this.ledger.record({ kind: 'sent', id, seq, at: Date.now() });
    this.ledger.record({ kind: 'confirmed', id, at: Date.now() });
    this.confirmedIds.add(id);
    if (dead) this.poison.add(id);
  }

  waitSent(n: number, timeoutMs = 60_000): Promise<void> {
    return waitFor(() => this.sentCount >= n, { timeoutMs, intervalMs: 5, message: `${n} sent` });
  }

  /**
   * Publishes at a steady rate (message `seq` delayed by `delayMs(seq)` when given); resolves when
   * every publish settled or `settleMs` passed.
   */
  async load({
    count,
    ratePerSec,
    body,
    settleMs = 30_000,
    delayMs,
  }: LoadOptions & { delayMs?: (seq: number) => number | undefined }): Promise<void> {
    const pending: Promise<void>[] = [];
    const start = Date.now();
    for (let seq = 0; seq < count; seq++) {
      const due = start + (seq * 1000) / ratePerSec;
      if (due > Date.now()) await sleep(due - Date.now());
      const delay = delayMs?.(seq);
      pending.push(
        this.publish(
          seq,
          body ? body(seq) : { seq },
          delay === undefined ? {} : { delayMs: delay },
        ),
      );
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(pending),
      new Promise((resolve) => (timer = setTimeout(resolve, settleMs))),
    ]);
    clearTimeout(timer);
  }

  /** Dead letters of the service now (the backend's own listing). */
  async deadLetterCount(): Promise<number> {
    return (await (await this.checkerBackend()).deadLetters.list(this.service)).length;
  }

  /**
   * Waits until every confirmed message is handled, the expected dead letters are there and the
   * broker holds nothing more for the route (a delivery whose ack was lost with its connection is
   * claimed or redelivered, and handled again, while the consumers still run). Never throws: the
   * checker reports what is missing.
   */
  async settle(timeoutMs = 60_000): Promise<boolean> {
    try {
      await waitFor(
        async () => {
          const handled = this.ledger.handledIds();
          for (const id of this.confirmedIds) {
            if (!this.poison.has(id) && !handled.has(id)) return false;
          }
          const poison = [...this.poison].filter((id) => this.confirmedIds.has(id)).length;
          if (poison > 0 && (await this.deadLetterCount()) < poison) return false;
          return (await this.pendingCount()) === 0;
        },
        { timeoutMs, intervalMs: 250, message: 'every confirmed message handled' },
      );
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Messages the broker still holds for the route: Redis, the group's pending and unread entries of
   * the topic stream, the queue stream's entries (acked ones are deleted) and delayed messages;
   * NATS, the messages of the run's messages and delayed streams that their consumers still owe.
   */
  async pendingCount(): Promise<number> {
    return Object.values(await this.held()).reduce((sum, n) => sum + n, 0);
  }

  /** What {@link pendingCount} adds up, by where it is held (the non-zero places only). */
  async held(): Promise<Record<string, number>> {
    const held: Record<string, number> = {};
    const add = (where: string, n: number) => {
      if (n) held[where] = n;
    };
    if (this.kind === 'redis') {
      const options = this.direct.options as RedisStreamsBackendOptions;
      // The backend's prefix: the run's, in a hash tag on a cluster.
      const prefix = options.prefix as string;
      const redis = options.cluster
        ? new Cluster(
            options.cluster.nodes.map((node) => ({
              host: new URL(node).hostname,
              port: Number(new URL(node).port),
            })),
            { lazyConnect: true, redisOptions: { maxRetriesPerRequest: 1 } },
          )
        : new Redis(options.url as string, { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await redis.connect();
        const topicStream = `${prefix}:t:${this.topic}`;
        if (await redis.exists(topicStream)) {
          const groups = (await redis.xinfo('GROUPS', topicStream)) as unknown[][];
          for (const fields of groups) {
            const group = new Map<string, unknown>();
            for (let i = 0; i < fields.length; i += 2) group.set(String(fields[i]), fields[i + 1]);
            if (group.get('name') !== this.workQueue) continue;
            add('topic stream pending', Number(group.get('pending') ?? 0));
            add('topic stream unread', Number(group.get('lag') ?? 0));
          }
        }
        add('queue stream', await redis.xlen(`${prefix}:q:${this.workQueue}`));
        add('delayed', await redis.zcard(`${prefix}:delayed`));
        return held;
      } finally {
        redis.disconnect();
      }
    }
    // Each stream's messages still owed, counted twice: by its consumers (pending + unacknowledged)
    // and by the stream itself. After a SIGKILL, nats-server 2.9 is wrong one way or the other: it
    // keeps messages its consumers acknowledged in the stream (their ack floor past them), and can
    // keep a message the interest stream deleted in a consumer's pending (never redelivered; fixed in
    // nats-server#7984). A message really owed is in both counts; the smaller one is what is held.
    const nc = await natsConnect({ servers: (this.direct.options as { servers: string }).servers });
    try {
      const jsm = await jetstreamManager(nc);
      for (const stream of [`${this.prefix}-messages`, `${this.prefix}-delayed`]) {
        const info = await jsm.streams.info(stream).catch(() => undefined);
        if (!info) continue;
        let owed = 0;
        for await (const c of jsm.consumers.list(stream)) owed += c.num_pending + c.num_ack_pending;
        const stored = info.state.messages;
        add(`${stream} (${stored} stored, ${owed} with its consumers)`, Math.min(stored, owed));
      }
      return held;
    } finally {
      await nc.close();
    }
  }

  /**
   * Stops the consumers, records the dead letters and anything left for the route, and returns the
   * checker's verdict.
   */
  async finish(): Promise<CheckReport> {
    await Promise.all(this.consumers.map((c) => c.stop()));
    const checker = await this.checkerBackend();
    for (const letter of await checker.deadLetters.list(this.service)) {
      this.ledger.record({
        kind: 'dead',
        id: letter.messageId,
        reason: letter.reason,
        errorClass: letter.errorClass,
        attempts: letter.attempts,
        queue: letter.queue,
      });
    }
    this.heldAtEnd = await this.held();
    if (Object.keys(this.heldAtEnd).length > 0) await this.drainLeftovers(checker);
    return check(this.ledger.rows());
  }

  /** Takes what the broker still holds for the route, as `leftover` rows (bounded: 20 s). */
  private async drainLeftovers(checker: BrokerBackend): Promise<void> {
    const seen = new Set<string>();
    const subscription = await checker.subscribe(
      {
        service: this.service,
        queue: this.workQueue,
        topics: [this.topic],
        external: false,
        concurrency: 10,
      },
      (delivery) => {
        if (!seen.has(delivery.messageId)) {
          seen.add(delivery.messageId);
          this.ledger.record({ kind: 'leftover', id: delivery.messageId, queue: delivery.queue });
        }
        return Promise.resolve({ action: 'ack' });
      },
    );
    try {
      await waitFor(async () => (await this.pendingCount()) === 0, {
        timeoutMs: 20_000,
        intervalMs: 250,
      });
    } catch {
      // what is still held is counted by the rows above; the pass bar shows it as leftover
    } finally {
      await subscription.cancel();
    }
  }

  /** Closes the producer and the checker; consumers still running get SIGKILL. */
  async close(): Promise<void> {
    for (const c of this.consumers) if (c.running) c.signal('SIGKILL');
    await Promise.all(this.consumers.map((c) => c.exited));
    await this.app?.close().catch(() => undefined);
    await this.checker?.close().catch(() => undefined);
    this.ledger.closed = true;
    if (!process.env.FAULTS_KEEP_LEDGER) rmSync(this.ledger.dir, { recursive: true, force: true });
  }
}
