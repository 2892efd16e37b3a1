import type { Logger } from '@nestjs/common';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import type {
  BackendSubscription,
  ConsumerState,
  DeliveryHandler,
  SubscriptionSpec,
} from '../../backend/broker-backend.interface';
import { reconnectDelay } from './amqp-backend.options';
import { sanitizeError, type AmqpConnectionManager } from './amqp-connection';
import { MessagingConfigError } from '../../errors/messaging.errors';
import { ConsumerChannel } from './amqp-consumer-channel';
import { AmqpDeliveryRunner } from './amqp-delivery-runner';
import type { AmqpSettlerContext } from './amqp-settler';
import {
  assertRequestQueue,
  declareSubscription,
  earlierRequestGenerationInUse,
  REQUEST_GENERATION_RECHECK_MS,
} from './amqp-topology';

/** What a consumer needs from its backend. */
export interface AmqpConsumerContext extends AmqpSettlerContext {
  readonly connection: AmqpConnectionManager;
  readonly logger: Logger;
  isClosing(): boolean;
}

/**
 * One subscription: a channel with prefetch = concurrency, the queue's topology, a consumer of the
 * queue and one of the route's volatile requests (see `amqp-topology.ts`); each delivery is handled
 * and settled by its `AmqpDeliveryRunner`. Re-subscribes by itself
 * after a lost connection, an unexpected channel close, or a consumer cancelled by the broker (queue
 * deleted: the delivery callback gets `null`), with backoff, until {@link cancel}.
 */
export class AmqpConsumer implements BackendSubscription {
  private current?: ConsumerChannel;
  private cancelled = false;
  private restoring?: Promise<void>;
  private restoreAgain = false;
  private wakeSleeper?: () => void;
  private readonly runner: AmqpDeliveryRunner;
  /** When it stopped consuming; undefined while a consumer is registered. */
  private detachedSince?: number = Date.now();

  constructor(
    private readonly spec: SubscriptionSpec,
    handler: DeliveryHandler,
    private readonly ctx: AmqpConsumerContext,
  ) {
    this.runner = new AmqpDeliveryRunner(spec, handler, ctx);
  }

  /** Declares and starts consuming on the current connection; rejects on any topology error. */
  async start(): Promise<void> {
    const conn = await this.ctx.connection.waitForConnection(this.ctx.options.connectTimeoutMs);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.open(conn);
        return;
      } catch (error) {
        // The request queue's last consumer (an instance stopping) was cancelled between its
        // declaration and our consume, and RabbitMQ deleted it: declare it again.
        if ((error as { code?: unknown }).code !== 404 || attempt === 3) throw error;
      }
    }
  }

  /** Stops intake (basic.cancel); in-flight deliveries still settle, then the channel closes. */
  async cancel(): Promise<void> {
    if (this.cancelled) return;
    this.cancelled = true;
    this.wakeSleeper?.();
    this.runner.stop();
    const state = this.current;
    this.current = undefined;
    if (state) await state.retire();
  }

  /** Waits for in-flight deliveries to settle, at most `timeoutMs`. */
  drain(timeoutMs: number): Promise<void> {
    return this.runner.drain(timeoutMs);
  }

  /** The connection was lost: its channel is dead; re-subscribe once reconnected. */
  connectionLost(): void {
    if (this.current) this.current.alive = false;
    this.detached();
    // A restore that failed on the dying connection is pausing: the next one is on its way.
    this.wakeSleeper?.();
    this.scheduleRestore();
  }

  private async open(conn: ChannelModel): Promise<void> {
    const ch = await conn.createChannel();
    const state = new ConsumerChannel(
      ch,
      conn,
      this.spec.queue,
      this.ctx.connection,
      this.ctx.logger,
      this.spec.exclusive === true,
    );
    ch.on('error', (error: unknown) =>
      this.ctx.hub.emitError(sanitizeError(error, `AMQP channel of queue '${this.spec.queue}'`)),
    );
    ch.on('close', () => this.onChannelClose(state));
    try {
      await ch.prefetch(
        this.spec.concurrency > 0 ? Math.floor(this.spec.concurrency) : this.ctx.options.prefetch,
      );
      await declareSubscription(conn, ch, this.ctx.options, this.spec);
      // The request queue first: if it is gone before we consume it (see start()), the channel closes
      // before any delivery of the route's queue has started a handler.
      state.requestTag = await this.consumeRequests(ch, state);
      const { consumerTag } = await ch.consume(
        this.spec.queue,
        (msg) => this.onMessage(state, msg, this.spec.queue),
        { noAck: false },
      );
      state.consumerTag = consumerTag;
    } catch (error) {
      state.alive = false;
      await ch.close().catch(() => undefined);
      if (error instanceof MessagingConfigError) throw error;
      throw sanitizeError(error, `subscribing to queue '${this.spec.queue}'`);
    }
    if (this.cancelled || this.ctx.isClosing()) {
      await state.retire();
      return;
    }
    this.current = state;
    this.detachedSince = undefined;
  }

  /** Whether it is consuming now, for health checks. */
  get state(): ConsumerState {
    return {
      queue: this.spec.queue,
      attached: this.detachedSince === undefined,
      detachedSince: this.detachedSince,
    };
  }

  private detached(): void {
    this.current = undefined;
    this.detachedSince ??= Date.now();
  }

  /**
   * Consumes the route's volatile requests on `ch` (its own queue only, with the topology ours to
   * declare: otherwise requests travel the durable way, see `AmqpRequester`). On a later generation
   * of the request queue, looks now and then for an earlier one in use and moves there.
   */
  private async consumeRequests(ch: Channel, state: ConsumerChannel): Promise<string | undefined> {
    if (this.spec.external || !this.ctx.options.assertTopology) return undefined;
    const { name, generation } = await assertRequestQueue(
      state.conn,
      ch,
      this.ctx.options,
      this.spec.queue,
      this.spec.topics,
    );
    const { consumerTag } = await ch.consume(name, (msg) => this.onMessage(state, msg, name), {
      noAck: false,
    });
    if (generation > 0) this.recheckGeneration(state, generation);
    return consumerTag;
  }

  /** Re-subscribes `state`'s consumer if an earlier generation of its request queue is consumed. */
  private recheckGeneration(state: ConsumerChannel, generation: number): void {
    const timer = setInterval(() => {
      if (this.current !== state || state.retired || !state.alive) {
        clearInterval(timer);
        return;
      }
      const { options } = this.ctx;
      earlierRequestGenerationInUse(state.conn, options, this.spec.queue, generation).then(
        (inUse) => {
          if (!inUse || this.current !== state || state.retired) return;
          clearInterval(timer);
          this.ctx.logger.warn(
            `Other instances of '${this.spec.queue}' take its volatile requests from an earlier ` +
              `generation of its request queue; re-subscribing to join them`,
          );
          this.detached();
          void state.retire();
          this.scheduleRestore();
        },
        () => undefined, // The connection is going: its loss re-subscribes anyway.
      );
    }, REQUEST_GENERATION_RECHECK_MS);
    timer.unref();
  }

  private onChannelClose(state: ConsumerChannel): void {
    state.alive = false;
    if (this.current !== state) return;
    this.detached();
    // amqplib closes the channels before the connection reports `close`: look again a tick later so
    // that a lost connection is logged once, by the connection manager.
    setImmediate(() => {
      if (this.ctx.connection.current === state.conn && !this.cancelled) {
        this.ctx.logger.warn(`The channel of queue '${this.spec.queue}' closed; re-subscribing`);
      }
    });
    this.scheduleRestore();
  }

  /** A delivery (or, as `null`, the broker's cancel) of `queue`, on `state`. */
  private onMessage(state: ConsumerChannel, msg: ConsumeMessage | null, queue: string): void {
    if (msg === null) {
      this.ctx.logger.warn(
        `RabbitMQ cancelled the consumer of queue '${queue}' (queue deleted?); re-subscribing`,
      );
      if (this.current === state) this.detached();
      void state.retire();
      this.scheduleRestore();
      return;
    }
    if (this.cancelled || this.ctx.isClosing() || state.retired) {
      // Arrived after cancel: hand it back for another consumer.
      state.settle(msg, 'requeue');
      return;
    }
    void this.runner.run(state, msg);
  }

  /** Closes the channel whatever is in flight (the backend is closing). */
  async closeChannel(): Promise<void> {
    this.cancelled = true;
    this.wakeSleeper?.();
    this.runner.stop();
    const state = this.current;
    this.current = undefined;
    if (state?.alive) await state.close();
  }

  private scheduleRestore(): void {
    if (this.cancelled || this.ctx.isClosing()) return;
    if (this.restoring) {
      this.restoreAgain = true;
      return;
    }
    this.restoring = this.restoreLoop().finally(() => {
      this.restoring = undefined;
      if (this.restoreAgain) {
        this.restoreAgain = false;
        this.scheduleRestore();
      }
    });
  }

  private async restoreLoop(): Promise<void> {
    for (let attempt = 0; !this.cancelled && !this.ctx.isClosing(); attempt++) {
      if (this.current?.alive && this.current.conn === this.ctx.connection.current) return;
      let conn: ChannelModel;
      try {
        conn = await this.ctx.connection.waitForConnection(this.ctx.options.connectTimeoutMs);
      } catch {
        continue;
      }
      if (this.cancelled || this.ctx.isClosing()) return;
      try {
        await this.open(conn);
        this.ctx.logger.log(`Re-subscribed to queue '${this.spec.queue}'`);
        return;
      } catch (error) {
        // The connection it tried was closing (a channel reports its close before the connection
        // does): no pause, the next turn waits for the new connection.
        if (conn !== this.ctx.connection.current) continue;
        this.ctx.hub.emitError(sanitizeError(error));
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, reconnectDelay(this.ctx.options.reconnect, attempt));
          this.wakeSleeper = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }
}
