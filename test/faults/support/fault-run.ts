/**
 * One fault scenario's run, start to verdict (RELIABILITY.md §7.2):
 *
 * 1. `FaultRun.start()`: a ledger dir, a producer (a Nest app in the test process,
 *    `MessagingModule.forRoot` + `MessagingPublisher`) and N consumer child processes.
 * 2. `load()`: publishes `count` messages at `ratePerSec`, each `sent` then `confirmed` or
 *    `rejected{reason}` in the ledger; the test injects its fault meanwhile (`waitSent(n)` syncs).
 * 3. `settle()`: waits until every confirmed message is handled or dead-lettered (bounded).
 * 4. `finish()`: stops the consumers (SIGTERM), reads the work queue, the delay queues and the
 *    dead-letter queue with `basic.get` (`dead` and `leftover` rows), and returns the checker's report.
 *
 * Names carry the scenario and a run id; the vhost or private node that holds them is deleted by the spec.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import * as amqplib from 'amqplib';
import type { Channel, ChannelModel } from 'amqplib';
import {
  AmqpBackend,
  type AmqpBackendOptions,
  MessagingModule,
  MessagingHealthService,
  MessagingPublisher,
} from '@app/messaging';
import { waitFor } from '@app/messaging/testing';
import { check, type CheckReport, summarize } from './checker';
import type { ConsumerConfig } from './consumer-child';
import { ConsumerProcess } from './consumer-process';
import { Ledger } from './ledger';

export interface FaultRunOptions {
  scenario: string;
  /** URL the services under test use (maybe through the chaos proxy). */
  url: string;
  /** URL of the checker: straight to the broker, same vhost. */
  directUrl: string;
  consumers: number;
  consumer?: Partial<ConsumerConfig>;
  producer?: Partial<AmqpBackendOptions>;
  /** Extra `codec` options of the producer's module. */
  producerCodec?: { maxBodyBytes?: number };
}

export interface LoadOptions {
  count: number;
  ratePerSec: number;
  /** Body of message `seq` (default `{ seq }`). */
  body?: (seq: number) => Record<string, unknown>;
  /** How long to wait for the last publishes to settle before calling them unsettled. */
  settleMs?: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class FaultRun {
  readonly ledger: Ledger;
  readonly service: string;
  readonly topic: string;
  readonly consumers: ConsumerProcess[] = [];
  /** Errors the producer's backend reported (its `error` events). */
  readonly producerErrors: Error[] = [];
  /** The producer backend's status changes, with their times. */
  readonly producerStatuses: Array<{ status: string; at: number }> = [];
  private app?: INestApplication;
  private publisher?: MessagingPublisher;
  private raw?: ChannelModel;
  private sentCount = 0;
  private readonly poison = new Set<string>();
  private readonly confirmedIds = new Set<string>();
  readonly startedAt = Date.now();

  private constructor(readonly options: FaultRunOptions) {
    const run = randomUUID().slice(0, 8);
    this.service = `${options.scenario}-${run}`;
    this.topic = `faults.${options.scenario}.${run}`;
    this.ledger = new Ledger(mkdtempSync(join(tmpdir(), `faults-${options.scenario}-`)));
  }

  static async start(options: FaultRunOptions): Promise<FaultRun> {
    const run = new FaultRun(options);
    await run.startProducer();
    // Consumers one by one: each declares the topology; starting them together races nothing, but
    // two Nest boots at once on 2 cores take as long as two in a row.
    for (let i = 0; i < options.consumers; i++) await run.startConsumer();
    return run;
  }

  get workQueue(): string {
    return `${this.service}.${this.topic}`;
  }

  get deadLetterQueue(): string {
    return `${this.service}.dead-letter`;
  }

  /** The producer's backend (for its `status`). */
  get backend(): AmqpBackend {
    return this.producerBackend!;
  }

  private producerBackend?: AmqpBackend;

  health() {
    return this.app!.get(MessagingHealthService).check();
  }

  async startConsumer(extra: Partial<ConsumerConfig> = {}): Promise<ConsumerProcess> {
    const consumer = new ConsumerProcess({
      url: this.options.url,
      service: this.service,
      topic: this.topic,
      ledgerDir: this.ledger.dir,
      concurrency: 10,
      handlerMs: [5, 50],
      ...this.options.consumer,
      ...extra,
    });
    this.consumers.push(consumer);
    await consumer.ready;
    return consumer;
  }

  /** Consumers of this run still running. */
  get live(): ConsumerProcess[] {
    return this.consumers.filter((c) => c.running);
  }

  private async startProducer(): Promise<void> {
    const backend = new AmqpBackend({
      url: this.options.url,
      connectionName: `faults-producer-${this.service}`,
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2 },
      ...this.options.producer,
    });
    this.producerBackend = backend;
    backend.on('error', (e) => this.producerErrors.push(e));
    backend.on('status', (status) => this.producerStatuses.push({ status, at: Date.now() }));
    const moduleRef = await Test.createTestingModule({
      imports: [
        MessagingModule.forRoot({
          service: `${this.service}-producer`,
          backend,
          ...(this.options.producerCodec ? { codec: this.options.producerCodec } : {}),
        }),
      ],
    }).compile();
    this.app = moduleRef.createNestApplication({ logger: ['error'] });
    await this.app.init();
    this.publisher = this.app.get(MessagingPublisher);
  }

  /** Publishes one message through the library, recording `sent` and its outcome. */
  publish(seq: number, body: Record<string, unknown> = { seq }, topic = this.topic): Promise<void> {
    const id = randomUUID();
    if (body.poison) this.poison.add(id);
    this.ledger.record({ kind: 'sent', id, seq, at: Date.now() });
    this.sentCount++;
    return this.publisher!.publish({ topic }, body, { messageId: id }).then(
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

  /** Records a message published by someone else (raw amqplib) so the checker knows it was sent. */
  recordForeign(id: string, seq: number, confirmed: boolean): void {
    this.ledger.record({ kind: 'sent', id, seq, at: Date.now() });
    if (confirmed) this.ledger.record({ kind: 'confirmed', id, at: Date.now() });
    else
      this.ledger.record({
        kind: 'rejected',
        id,
        reason: 'raw',
        error: 'not confirmed',
        at: Date.now(),
      });
  }

  /** Marks a sent id as expected in the dead-letter queue (settle() waits for it there). */
  expectDead(id: string): void {
    this.poison.add(id);
  }

  /** Resolves once `n` messages have been sent (to time a fault within the load). */
  waitSent(n: number, timeoutMs = 60_000): Promise<void> {
    return waitFor(() => this.sentCount >= n, { timeoutMs, intervalMs: 5, message: `${n} sent` });
  }

  /** Publishes at a steady rate; resolves when every publish settled or `settleMs` passed. */
  async load({ count, ratePerSec, body, settleMs = 30_000 }: LoadOptions): Promise<void> {
    const pending: Promise<void>[] = [];
    const start = Date.now();
    for (let seq = 0; seq < count; seq++) {
      const due = start + (seq * 1000) / ratePerSec;
      if (due > Date.now()) await sleep(due - Date.now());
      pending.push(this.publish(seq, body ? body(seq) : { seq }));
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(pending),
      new Promise((resolve) => (timer = setTimeout(resolve, settleMs))),
    ]);
    clearTimeout(timer);
  }

  /**
   * Waits until every confirmed message is handled (or, for poison, dead-lettered), except those
   * `excused` (e.g. destroyed by a queue delete). Never throws: the checker reports what is missing.
   */
  async settle(
    timeoutMs = 60_000,
    excused: (id: string) => boolean = () => false,
  ): Promise<boolean> {
    try {
      await waitFor(
        async () => {
          const handled = this.ledger.handledIds();
          for (const id of this.confirmedIds) {
            if (!this.poison.has(id) && !handled.has(id) && !excused(id)) return false;
          }
          const poisonConfirmed = [...this.poison].filter((id) => this.confirmedIds.has(id)).length;
          return (
            poisonConfirmed === 0 || (await this.depth(this.deadLetterQueue)) >= poisonConfirmed
          );
        },
        { timeoutMs, intervalMs: 250, message: 'every confirmed message handled' },
      );
      return true;
    } catch {
      return false;
    }
  }

  /** Ready messages of a queue (-1 when it does not exist), on the checker's own connection. */
  async depth(queue: string): Promise<number> {
    const ch = await this.channel();
    try {
      return (await ch.checkQueue(queue)).messageCount;
    } catch {
      return -1;
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  /** Consumers of a queue, as the broker counts them. */
  async consumerCount(queue = this.workQueue): Promise<number> {
    const ch = await this.channel();
    try {
      return (await ch.checkQueue(queue)).consumerCount;
    } catch {
      return -1;
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  /** A fresh channel on the checker's connection (re-opened after an operator closed it). */
  async channel(): Promise<Channel> {
    if (!this.raw) {
      const conn = await amqplib.connect(this.options.directUrl);
      conn.on('error', () => undefined);
      conn.on('close', () => {
        if (this.raw === conn) this.raw = undefined;
      });
      this.raw = conn;
    }
    const ch = await this.raw.createChannel();
    ch.on('error', () => undefined);
    return ch;
  }

  /** A confirm channel on the checker's connection, for raw publishes. */
  async confirmChannel(): Promise<amqplib.ConfirmChannel> {
    await (await this.channel()).close();
    const ch = await this.raw!.createConfirmChannel();
    ch.on('error', () => undefined);
    return ch;
  }

  /**
   * Stops the consumers, drains what is left (work queue, delay queues, dead letters) into the
   * ledger and returns the verdict. `tiers` are extra queues to drain (the `messaging.delay-level.*`
   * queues the scenario used).
   */
  async finish(tiers: string[] = []): Promise<CheckReport> {
    await Promise.all(this.consumers.map((c) => c.stop()));
    await this.drain(this.deadLetterQueue, (msg) => {
      const h = msg.properties.headers ?? {};
      this.ledger.record({
        kind: 'dead',
        id: msg.properties.messageId as string,
        reason: String(
          h['x-messaging-dead-letter-reason'] ?? `broker:${String(h['x-first-death-reason'])}`,
        ),
        errorClass: String(h['x-messaging-dead-letter-error-class'] ?? ''),
        attempts: Number(h['x-messaging-attempt'] ?? 0),
        queue: String(h['x-messaging-dead-letter-queue'] ?? h['x-first-death-queue'] ?? ''),
      });
    });
    for (const queue of [this.workQueue, ...tiers]) {
      await this.drain(queue, (msg) =>
        this.ledger.record({ kind: 'leftover', id: msg.properties.messageId as string, queue }),
      );
    }
    return check(this.ledger.rows());
  }

  private async drain(queue: string, onMessage: (msg: amqplib.GetMessage) => void): Promise<void> {
    const ch = await this.channel();
    try {
      await ch.checkQueue(queue);
      for (;;) {
        const msg = await ch.get(queue, { noAck: true });
        if (!msg) break;
        onMessage(msg);
      }
    } catch {
      // no such queue: nothing left in it
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  /** Closes the producer and the checker's connection; consumers still running get SIGKILL. */
  async close(): Promise<void> {
    for (const c of this.consumers) if (c.running) c.signal('SIGKILL');
    await Promise.all(this.consumers.map((c) => c.exited));
    await this.app?.close().catch(() => undefined);
    await this.raw?.close().catch(() => undefined);
    // The ledger's files stay for a post-mortem only when asked for.
    this.ledger.closed = true;
    if (!process.env.FAULTS_KEEP_LEDGER) rmSync(this.ledger.dir, { recursive: true, force: true });
  }

  /** A one-line summary for logs and docs. */
  static line(scenario: string, report: CheckReport, extra = ''): string {
    return `[faults] ${scenario}: ${summarize(report)}${extra ? `; ${extra}` : ''}`;
  }
}
