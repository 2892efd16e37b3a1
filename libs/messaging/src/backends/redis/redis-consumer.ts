/**
 * One subscription on Redis: its binding, a reader connection running `XREADGROUP` over the queue's
 * topic streams and its queue stream, the claims (`RedisClaims`: `XAUTOCLAIM` of deliveries a crashed
 * consumer left pending, and renewal of its own) and, for a route on a queue of ours, its volatile
 * requests (`RedisRequestSource`). Each delivery goes to the handler, then to `RedisSettler`. An
 * exclusive subscription reads only while its instance holds the queue's lease, beginning each turn
 * with what the last holder left pending (`redis-exclusive.ts`, `redis-lease.ts`).
 */
import type { Redis } from 'ioredis';
import type {
  ConsumerState,
  Delivery,
  DeliveryHandler,
  Settlement,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { topicMatches } from '../../backend/topic-matcher';
import { TimedWaits } from '../../backend/timed-waits';
import { BackendClosedError } from '../../errors/messaging.errors';
import { type ClaimedEntry, type PendingEntry, RedisClaims } from './redis-claims';
import { type EntrySource, toDelivery } from './redis-messages';
import { isCluster, nodeFor } from './redis-cluster';
import type { RedisPubSub } from './redis-pubsub';
import { RedisExclusive } from './redis-exclusive';
import { RedisRequestSource } from './redis-request-source';
import { bindQueue, createGroup, forgetConsumer } from './redis-groups';
import { RedisSettler, type RedisSettlerContext } from './redis-settler';

/** What a consumer needs from its backend. */
export interface RedisConsumerContext extends RedisSettlerContext {
  /** This backend instance's consumer name. */
  readonly consumer: string;
  /** The backend's pub/sub connection (volatile requests). */
  readonly pubsub: RedisPubSub;
  /** A new connection for this consumer's blocking reads. */
  createReader(): Redis;
  /** Reports (once) that Redis lost the dataset, if it did: called when a group has vanished. */
  checkDataset(): Promise<void>;
  /** Whether the backend is closing (its subscriptions are about to stop). */
  closing(): boolean;
}

type StreamReply = Array<[Buffer, Array<[Buffer, Buffer[] | null]>]> | null;

export class RedisConsumer {
  private readonly reader: Redis;
  private readonly streams = new Map<string, EntrySource>();
  private readonly inFlight = new Map<string, ClaimedEntry>();
  private readonly wildcard: boolean;
  private readonly queueStream: string;
  private readonly settler: RedisSettler;
  private readonly claims: RedisClaims;
  /** Volatile requests: a route on a queue of ours with topics. */
  private readonly requests?: RedisRequestSource;
  /** An exclusive subscription's turns (`redis-exclusive.ts`). */
  private readonly exclusive?: RedisExclusive;
  private readerId?: number;
  /** On a cluster: the reader's connection to the slot's master, whose `CLIENT ID` is `readerId`. */
  private readerNode?: Redis;
  private readonly clustered: boolean;
  private knownTopics = -1;
  private stopped = false;
  private loop?: Promise<void>;
  private readonly claimEveryMs: number;
  private nextClaimAt = 0;
  private renewTimer?: NodeJS.Timeout;
  private renewing = false;
  private wake?: () => void;
  private readonly drainWaiters = new TimedWaits();
  private detachedSince: number | undefined = Date.now();
  private reportedReadError = false;

  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly handler: DeliveryHandler,
    private readonly ctx: RedisConsumerContext,
  ) {
    this.reader = ctx.createReader();
    this.reader.on('error', () => undefined); // reported through the read loop
    this.clustered = isCluster(this.reader);
    // On a cluster the id is the node's, learnt before each read on a node new to it (trackReaderNode).
    this.reader.on('ready', () => {
      if (this.clustered) return;
      void this.reader.client('ID').then(
        (id) => (this.readerId = Number(id)),
        () => undefined,
      );
    });
    this.wildcard = spec.topics.some((t) => t.includes('*') || t.includes('#'));
    this.queueStream = ctx.keys.queue(spec.queue);
    this.settler = new RedisSettler(spec, ctx);
    this.claims = new RedisClaims({
      command: ctx.command,
      options: ctx.options,
      group: spec.queue,
      consumer: ctx.consumer,
      inFlight: () => this.inFlight.values(),
      free: () => this.spec.concurrency - this.inFlight.size,
      dispatch: (stream, id, raw, overLimit) => this.dispatch(stream, id, raw, true, overLimit),
    });
    if (!spec.external && spec.topics.length > 0)
      this.requests = new RedisRequestSource(spec, handler, this.settler, ctx);
    if (spec.exclusive)
      this.exclusive = new RedisExclusive(ctx, spec.queue, this.claims, {
        streams: () => this.streams.keys(),
        stopped: () => this.stopped,
        dispatch: (e) => this.dispatch(e.stream, e.id, e.raw, true, e.overLimit),
        failed: (e) => this.readFailed(e),
      });
    this.claimEveryMs = Math.max(50, Math.min(5_000, Math.floor(ctx.options.claimIdleMs / 3)));
  }

  /** The health of this subscription. */
  get state(): ConsumerState {
    const attached = !this.stopped && this.reader.status === 'ready' && !this.reportedReadError;
    return attached
      ? { queue: this.spec.queue, attached }
      : { queue: this.spec.queue, attached, detachedSince: this.detachedSince ?? Date.now() };
  }

  /** Declares the binding and groups, connects the reader and starts consuming. */
  async start(connect: (redis: Redis) => Promise<void>): Promise<void> {
    const topics = await bindQueue(this.ctx.command, this.ctx.keys, this.spec);
    this.streams.set(this.queueStream, { kind: 'q', name: this.spec.queue });
    if (this.spec.external) {
      // Retries and requeues of an external queue go to a stream of ours, not to the foreign stream
      // (whose other groups would receive them too).
      const retries = this.ctx.keys.externalRetries(this.spec.queue);
      this.streams.set(retries, { kind: 'q', name: this.spec.queue });
      await createGroup(this.ctx.command, retries, this.spec.queue, '0');
    }
    for (const topic of topics) this.addTopic(topic);
    // Cancelled (the backend closed) while starting: start nothing.
    if (this.stopped) throw this.cancelledWhileStarting();
    // Its reader, then its requests: a step that fails, or a cancel meanwhile, undoes the start.
    for (const step of [() => connect(this.reader), async () => this.requests?.start()]) {
      try {
        await step();
      } catch (error) {
        this.reader.disconnect();
        throw this.stopped ? this.cancelledWhileStarting() : error;
      }
      if (this.stopped) {
        this.reader.disconnect();
        throw this.cancelledWhileStarting();
      }
    }
    this.detachedSince = undefined;
    await this.exclusive?.lease.start();
    this.loop = this.run();
    this.renewTimer = setInterval(() => void this.renewTick(), this.claimEveryMs);
  }

  private cancelledWhileStarting(): BackendClosedError {
    return new BackendClosedError(
      `RedisStreamsBackend closed while the subscription to '${this.spec.queue}' was starting`,
    );
  }

  /**
   * Stops taking deliveries; those in flight still settle (see {@link drain}). Called while
   * {@link start} runs, it makes `start` disconnect its reader and reject with `BackendClosedError`.
   */
  async cancel(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.renewTimer);
    // First of all: no longer counted as consuming the route, so that requests go elsewhere.
    await this.requests?.stop();
    this.wake?.();
    this.exclusive?.lease.wakeWaiters();
    // Unblock the reader's XREADGROUP; it may be between two reads, so until the loop ends.
    const loop = this.loop ?? Promise.resolve();
    let ended = false;
    void loop.finally(() => (ended = true));
    const deadline = Date.now() + this.ctx.options.blockMs + 1_000;
    while (!ended && Date.now() < deadline) {
      // Redis unreachable: nothing to unblock there (the reader is cut off too), and the command
      // would wait in ioredis's queue.
      if (this.readerId !== undefined && this.ctx.command.status === 'ready')
        await nodeFor(this.ctx.command, this.ctx.keys.slot)
          .client('UNBLOCK', this.readerId)
          .catch(() => undefined);
      await Promise.race([loop, new Promise((resolve) => setTimeout(resolve, 50))]);
    }
    this.reader.disconnect();
    await loop.catch(() => undefined);
  }

  /** Resolves once no delivery (nor request) is in flight, or after `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    const requests = this.requests?.drain(timeoutMs);
    this.settler.flushAcks();
    if (this.inFlight.size > 0) await this.drainWaiters.wait(timeoutMs);
    await requests;
    if (this.stopped) await this.exclusive?.lease.stop();
  }

  /**
   * Gives back an exclusive lease (a subscription cancelled while starting was not drained), then
   * removes this instance's consumer where nothing is pending for it (a pending delivery keeps it,
   * for another instance to claim): closed instances do not pile up in `XINFO CONSUMERS`. After
   * {@link cancel} and {@link drain}; nothing more while Redis is unreachable (the name stays).
   */
  async forget(): Promise<void> {
    await this.exclusive?.lease.stop();
    if (this.ctx.command.status !== 'ready') return;
    await forgetConsumer(this.ctx.command, this.streams.keys(), this.spec.queue, this.ctx.consumer);
  }

  private addTopic(topic: string): void {
    this.streams.set(this.ctx.keys.topic(topic), { kind: 't', name: topic });
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      const free = this.spec.concurrency - this.inFlight.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      try {
        if (this.exclusive && !(await this.exclusive.mayRead(free))) continue;
        if (Date.now() >= this.nextClaimAt) {
          // Claims run here, between reads, so that they share the reads' `concurrency` slots.
          this.nextClaimAt = Date.now() + this.claimEveryMs;
          await this.claims.claimAbandoned(this.streams.keys(), () => this.stopped);
          continue;
        }
        if (this.wildcard) await this.refreshTopics();
        if (this.clustered) await this.trackReaderNode();
        const keys = [...this.streams.keys()];
        const reply = (await this.reader.callBuffer(
          'XREADGROUP',
          'GROUP',
          this.spec.queue,
          this.ctx.consumer,
          'COUNT',
          free,
          'BLOCK',
          this.ctx.options.blockMs,
          'STREAMS',
          ...keys,
          ...keys.map(() => '>'),
        )) as StreamReply;
        failures = 0;
        this.attached();
        if (reply) this.take(reply, false);
      } catch (error) {
        if (this.stopped) break;
        const message = error instanceof Error ? error.message : String(error);
        if (message.includes('NOGROUP')) {
          // The stream or group is gone (Redis restarted empty, keys deleted): say whether the data
          // was lost with it, and declare them again.
          await this.ctx.checkDataset();
          await this.ensureGroups().catch((e: Error) => this.readFailed(e));
        } else {
          this.readFailed(error instanceof Error ? error : new Error(message));
        }
        failures++;
        await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 50 * failures)));
      }
    }
  }

  /**
   * On a cluster: the `CLIENT ID` of the reader's connection to the slot's master, asked again when
   * that connection changed (a failover), so that `cancel()` unblocks the read on the right node.
   */
  private async trackReaderNode(): Promise<void> {
    const node = nodeFor(this.reader, this.ctx.keys.slot);
    if (node === this.readerNode || node === this.reader) return;
    this.readerId = Number(await node.client('ID'));
    this.readerNode = node;
  }

  private attached(): void {
    if (this.reportedReadError || this.detachedSince !== undefined) {
      this.reportedReadError = false;
      this.detachedSince = undefined;
      this.ctx.logger.log(`Consuming '${this.spec.queue}' again`);
    }
  }

  private readFailed(error: Error): void {
    this.detachedSince ??= Date.now();
    if (this.reportedReadError) return;
    this.reportedReadError = true;
    this.ctx.hub.emitError(
      new Error(`Reading queue '${this.spec.queue}' from Redis failed: ${error.message}`, {
        cause: error,
      }),
    );
  }

  /** A wildcard subscription picks up the topics that became known since its last read. */
  private async refreshTopics(): Promise<void> {
    const count = await this.ctx.command.scard(this.ctx.keys.topics);
    if (count === this.knownTopics) return;
    this.knownTopics = count;
    for (const topic of await this.ctx.command.smembers(this.ctx.keys.topics)) {
      if (this.streams.has(this.ctx.keys.topic(topic))) continue;
      if (this.spec.topics.some((pattern) => topicMatches(pattern, topic))) this.addTopic(topic);
    }
  }

  private async ensureGroups(): Promise<void> {
    await bindQueue(this.ctx.command, this.ctx.keys, this.spec);
    for (const [stream, source] of this.streams)
      await createGroup(this.ctx.command, stream, this.spec.queue, source.kind === 'q' ? '0' : '$');
  }

  private take(reply: NonNullable<StreamReply>, redelivered: boolean): void {
    for (const [streamKey, entries] of reply) {
      const stream = streamKey.toString('utf8');
      for (const [idBuffer, raw] of entries) {
        if (raw) this.dispatch(stream, idBuffer.toString('utf8'), raw, redelivered);
      }
    }
  }

  private dispatch(
    stream: string,
    id: string,
    raw: Buffer[],
    redelivered: boolean,
    overLimit?: PendingEntry['overLimit'],
  ): void {
    const source = this.streams.get(stream);
    const key = `${stream}\n${id}`;
    if (!source || this.inFlight.has(key)) return;
    const delivery = toDelivery(raw, source, this.spec.queue, id, redelivered);
    this.inFlight.set(key, { stream, id, renewedAt: Date.now() });
    const settled = this.stopped
      ? this.settle(stream, id, delivery, { action: 'requeue' })
      : overLimit
        ? this.settler.deadLetterOverLimit(stream, id, delivery, overLimit)
        : this.handler(delivery).then((settlement) =>
            this.settle(stream, id, delivery, settlement),
          );
    settled.then(
      () => this.settled(key),
      (error: Error) => {
        this.ctx.hub.emitError(
          new Error(
            `Could not settle message ${delivery.messageId} of '${this.spec.queue}' (it stays pending and is delivered again after claimIdleMs): ${error.message}`,
            { cause: error },
          ),
        );
        this.settled(key);
      },
    );
  }

  /** Settles; an exclusive subscription that stops leaves a requeue pending for its successor. */
  private settle(stream: string, id: string, delivery: Delivery, settlement: Settlement) {
    const stopping = this.stopped || this.ctx.closing();
    if (this.exclusive && stopping && settlement.action === 'requeue') return Promise.resolve();
    return this.settler.settle(stream, id, delivery, settlement);
  }

  private settled(key: string): void {
    this.inFlight.delete(key);
    this.wake?.();
    if (this.inFlight.size === 0) this.drainWaiters.wakeAll();
  }

  /** Renews the claim on deliveries in flight here, so that a long handler is not taken over. */
  private async renewTick(): Promise<void> {
    if (this.stopped || this.renewing) return;
    this.renewing = true;
    try {
      await this.claims.renew();
    } catch (error) {
      if (!this.stopped) this.readFailed(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.renewing = false;
    }
  }
}
