import type { Logger } from '@nestjs/common';
import type { MessageHandler } from '@nestjs/microservices';
import type { Delivery, Settlement } from '../backend/broker-backend.interface';
import { isExpiredRequest } from '../backend/message-headers';
import type { MessageCodec } from '../codec/message-codec';
import { readCloudEvent } from '../codec/cloud-events';
import { BatchContext } from '../context/batch-context';
import { MessageContext } from '../context/message-context';
import type { ConsumeOutcome, MessagingInstruments } from '../observability/messaging-metrics';
import { BatchCollector, itemFailures } from './batch-collector';
import type { PauseGates } from './pause-gates';
import type { ResolvedBatch } from './batch-route';
import type { Route } from './route';
import { ACK, REQUEUE, type Settlements } from './settlements';

/** Items whose `ack` is not a success, for `consumed_total`. */
interface Marks {
  /** Requests whose caller stopped waiting: acknowledged without running. */
  readonly expired: Set<number>;
  /** Settled as failed (an `ack` then means dropped, or a request answered with its error). */
  readonly failed: Set<number>;
}

/** What a batch consumer needs of the server that owns it. */
export interface BatchHost {
  readonly service: string;
  /** The server's shutdown signal: aborted once `close()` gave up waiting for handlers. */
  readonly signal: AbortSignal;
  readonly codec: MessageCodec;
  readonly settlements: Settlements;
  readonly instruments: MessagingInstruments;
  readonly logger: Logger;
  readonly pauses: PauseGates;
  /** Runs the handler once inside Nest's processing hooks (guards, interceptors, filters). */
  run(ctx: BatchContext, handler: MessageHandler, payloads: unknown[]): Promise<unknown>;
  /** `count` deliveries are settled (the server's in-flight count). */
  done(count: number): void;
}

/**
 * The deliveries of one batch route (`@Consume({ batch })`): collects them into batches, runs each
 * batch in one of the route's `concurrency` slots, and settles each delivery on its own: acknowledged
 * when the handler returned, else retried or dead-lettered by the retry policy with its own attempt.
 * Before the handler, each item is decoded, upcast to the handler's `version` (if it has one) and goes
 * through its pipes: an item that fails any of them is settled alone and left out of the batch. Metrics count items (`consumed_total` per message), while
 * `in_flight` counts handler calls (one per batch).
 */
export class BatchConsumer {
  private readonly collector: BatchCollector<Delivery, Settlement>;
  private closed = false;

  constructor(
    private readonly route: Route,
    private readonly batch: ResolvedBatch,
    private readonly host: BatchHost,
  ) {
    this.collector = new BatchCollector({
      size: batch.size,
      maxWaitMs: batch.maxWaitMs,
      run: (deliveries) => this.run(deliveries),
      unhandled: REQUEUE,
    });
  }

  /** How many deliveries wait for their batch to fill. */
  get waiting(): number {
    return this.collector.waiting;
  }

  /**
   * The settlement of `delivery`, once its batch ran (or the server closed before it could). While
   * the handler is paused, deliveries wait before they join a batch (and go back at close).
   */
  add(delivery: Delivery): Promise<Settlement> {
    const { pauses } = this.host;
    if (pauses.active && pauses.isPaused(this.route.name)) {
      return pauses
        .wait(this.route.name)
        .then((go) => (go ? this.add(delivery) : this.unhandled()));
    }
    return this.closed ? this.unhandled() : this.collector.add(delivery);
  }

  private unhandled(): Promise<Settlement> {
    this.host.done(1);
    return Promise.resolve(REQUEUE);
  }

  /**
   * The server closes: deliveries still collecting, and batches waiting for a slot, go back to the
   * broker unhandled; batches already running finish (or are given up with the server's others).
   */
  close(): void {
    this.closed = true;
    const waiting = this.collector.waiting;
    this.collector.close();
    if (waiting > 0) this.host.done(waiting);
  }

  private async run(deliveries: Delivery[]): Promise<Settlement[]> {
    const { route, host } = this;
    const slot = route.slots.take();
    if (slot) await slot;
    const started = performance.now();
    const settled = new Array<Settlement>(deliveries.length);
    const marks: Marks = { expired: new Set(), failed: new Set() };
    if (host.instruments.enabled) host.instruments.running(route.name, 1);
    try {
      if (this.closed || host.signal.aborted) settled.fill(REQUEUE);
      else await this.handle(deliveries, settled, marks);
    } catch (unexpected) {
      // Never reached by design (each step settles its own failures): nothing is lost, all go back.
      host.logger.error(`${route.name} batch failed unexpectedly: ${String(unexpected)}`);
      for (let i = 0; i < settled.length; i++) settled[i] ??= REQUEUE;
    } finally {
      route.slots.release();
      if (host.instruments.enabled) {
        host.instruments.running(route.name, -1);
        this.measure(deliveries, settled, marks, (performance.now() - started) / 1000);
      }
      host.done(deliveries.length);
    }
    return settled;
  }

  /** Fills `settled` with each delivery's settlement. */
  private async handle(deliveries: Delivery[], settled: Settlement[], marks: Marks) {
    const { route, host } = this;
    const fail = (i: number, error: unknown): void => {
      marks.failed.add(i);
      settled[i] = host.settlements.failed(route, deliveries[i], error);
    };
    const live: number[] = [];
    const payloads: unknown[] = [];
    const contexts: MessageContext[] = [];
    const now = Date.now();
    for (let i = 0; i < deliveries.length; i++) {
      const delivery = deliveries[i];
      if (delivery.replyTo !== undefined && isExpiredRequest(delivery.headers, now)) {
        marks.expired.add(i);
        settled[i] = ACK;
        continue;
      }
      try {
        const event = readCloudEvent(delivery, host.codec);
        const ctx = new MessageContext(event?.delivery ?? delivery, host.service, host.signal);
        const decoded = event ? event.payload : host.codec.decode(delivery);
        const payload = route.versions ? await route.versions.upcast(decoded, ctx) : decoded;
        payloads.push(this.batch.pipes ? await this.batch.pipes.apply(payload) : payload);
        contexts.push(ctx);
        live.push(i);
      } catch (error) {
        // Malformed, of a version it does not take, or refused by a pipe: this item alone is
        // settled; the batch goes on.
        fail(i, error);
      }
    }
    if (live.length === 0) return;
    try {
      const result = await host.run(
        new BatchContext(contexts, host.signal),
        route.handler,
        payloads,
      );
      for (const i of live) settled[i] = host.settlements.handled(deliveries[i], result);
    } catch (thrown) {
      if (host.signal.aborted && thrown === host.signal.reason) {
        // close() gave up on this batch: the broker delivers its items again.
        for (const i of live) settled[i] = REQUEUE;
        return;
      }
      const { failed, invalid } = itemFailures(thrown, live.length);
      if (invalid) host.logger.warn(`${route.name}: ${invalid}`);
      live.forEach((i, k) => {
        if (failed.has(k)) fail(i, failed.get(k));
        else settled[i] = host.settlements.handled(deliveries[i], undefined);
      });
    }
  }

  /** `consumed_total` and the duration, per item (each item took its whole batch's time). */
  private measure(
    deliveries: Delivery[],
    settled: Settlement[],
    marks: Marks,
    seconds: number,
  ): void {
    deliveries.forEach((delivery, i) => {
      const settlement = settled[i];
      const outcome: ConsumeOutcome = marks.expired.has(i)
        ? 'expired'
        : settlement.action !== 'ack'
          ? settlement.action
          : !marks.failed.has(i)
            ? 'ack'
            : delivery.replyTo !== undefined
              ? 'error-reply'
              : 'dropped';
      const reason = settlement.action === 'dead-letter' ? settlement.failure.reason : undefined;
      this.host.instruments.settled(
        { handler: this.route.name, topic: delivery.topic, redelivered: delivery.redelivered },
        outcome,
        seconds,
        reason,
      );
    });
  }
}
