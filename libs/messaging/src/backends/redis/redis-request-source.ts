/**
 * The volatile requests of one route (a subscription on a queue of ours): while it lasts, the
 * instance is subscribed to the route's channel `<prefix>:rq:<db>:<queue>` (see `RedisPubSub`), which
 * is how requesters know it consumes now (`REQUEST_SCRIPT`). The only instance of a route gets each
 * request in a message on that channel; when there are several, a request goes into the route's list
 * `<prefix>:rq:<queue>` and the channel is rung (an empty message), and each ring makes an instance
 * pop (`RPOP key <free slots>`) from the list it shares with the others, so a request is taken by one
 * of them. Never more than `concurrency` are in flight here: a request that comes while every slot is
 * taken goes back to the list (`GIVE_BACK_SCRIPT`), to be popped once one frees; rings that come
 * while a pop is in flight or while every slot is taken are folded into one more pop, once it can be
 * made.
 *
 * A request's reply goes out over pub/sub as a durable request's does; there is nothing to
 * acknowledge. One taken after the route was cancelled (popped, or published here before Redis
 * confirmed the `UNSUBSCRIBE`) goes back to the list for another instance.
 */
import type { Redis } from 'ioredis';
import type { BackendEventHub } from '../../backend/backend-events';
import type { DeliveryHandler, SubscriptionSpec } from '../../backend/broker-backend.interface';
import { MessagingHeaders } from '../../backend/message-headers';
import { TimedWaits } from '../../backend/timed-waits';
import { coalesceWrites } from './redis-connection';
import { GIVE_BACK_SCRIPT, GIVE_BACK_SCRIPT_SHARDED } from './redis-message-scripts';
import type { RedisPubSub } from './redis-pubsub';
import { fromRequestEntry } from './redis-request-entries';
import { runScript } from './redis-scripts';
import type { RedisSettler } from './redis-settler';
import type { RedisKeys } from './redis-topology';

/** What a request source needs from its backend. */
export interface RedisRequestSourceContext {
  readonly command: Redis;
  readonly pubsub: RedisPubSub;
  readonly keys: RedisKeys;
  readonly hub: BackendEventHub;
}

/** How long a request given back lasts in its list when it carries no deadline. */
const GIVEN_BACK_MS = 60_000;

export class RedisRequestSource {
  /** The route's list. */
  private readonly key: string;
  /** The route's channel. */
  private readonly channel: string;
  private inFlight = 0;
  /** Give-backs Redis did not answer yet: a close waits for them, as for the requests in flight. */
  private givingBack = 0;
  /** Slots a pop in flight may fill (so that what is published here meanwhile does not take them). */
  private reserved = 0;
  /** A ring came (or the last pop was full) since the last pop: the list may hold more. */
  private more = true;
  private stopped = false;
  private failures = 0;
  private retryTimer?: NodeJS.Timeout;
  private readonly idleWaiters = new TimedWaits(true);
  private readonly ring = (): void => {
    this.more = true;
    this.pump();
  };
  private readonly onMessage = (message: Buffer): void => {
    if (message.length === 0) this.ring();
    else if (this.stopped || this.inFlight + this.reserved >= this.spec.concurrency)
      this.giveBack([message]);
    else this.dispatch(message);
  };
  private readonly done = (): void => {
    this.inFlight--;
    this.pump();
    this.checkIdle();
  };

  constructor(
    private readonly spec: SubscriptionSpec,
    private readonly handler: DeliveryHandler,
    private readonly settler: RedisSettler,
    private readonly ctx: RedisRequestSourceContext,
  ) {
    this.key = ctx.keys.requests(spec.queue);
    this.channel = ctx.keys.requestChannel(spec.queue);
  }

  /** Counts as consuming the route once this resolves, and takes what waits already. */
  async start(): Promise<void> {
    await this.ctx.pubsub.subscribe(this.channel, this.onMessage);
    // Stopped while subscribing: stop() found nothing to unsubscribe yet.
    if (this.stopped) await this.ctx.pubsub.unsubscribe(this.channel, this.onMessage);
    else this.ring();
  }

  /**
   * Stops counting as consuming the route and taking requests; those in flight still settle. What
   * is still published here until Redis confirmed goes back to the list, for another instance.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await this.ctx.pubsub.unsubscribe(this.channel, this.onMessage);
  }

  /** Resolves once nothing is in flight (nor being popped or given back), or after `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    if (!this.idle) await this.idleWaiters.wait(timeoutMs);
  }

  private get idle(): boolean {
    return this.inFlight === 0 && this.reserved === 0 && this.givingBack === 0;
  }

  private checkIdle(): void {
    if (this.idle) this.idleWaiters.wakeAll();
  }

  private pump(): void {
    if (this.reserved > 0 || this.stopped || !this.more) return;
    const free = this.spec.concurrency - this.inFlight;
    if (free <= 0) return;
    this.reserved = free;
    this.more = false;
    coalesceWrites(this.ctx.command);
    (this.ctx.command.callBuffer('RPOP', this.key, free) as Promise<Buffer[] | null>).then(
      (entries) => this.popped(entries, free),
      (error: unknown) => this.popFailed(error),
    );
  }

  private popped(entries: Buffer[] | null, asked: number): void {
    this.reserved = 0;
    this.failures = 0;
    if (entries !== null) {
      if (this.stopped) this.giveBack(entries);
      else {
        if (entries.length === asked) this.more = true;
        for (const entry of entries) this.dispatch(entry);
      }
    }
    this.pump();
    this.checkIdle();
  }

  private popFailed(error: unknown): void {
    this.reserved = 0;
    this.more = true;
    this.checkIdle();
    if (this.stopped) return;
    if (this.failures++ === 0) {
      const message = error instanceof Error ? error.message : String(error);
      this.ctx.hub.emitError(
        new Error(`Taking requests of '${this.spec.queue}' from Redis failed: ${message}`, {
          cause: error,
        }),
      );
    }
    this.retryTimer = setTimeout(this.ring, Math.min(2_000, 50 * this.failures));
  }

  private dispatch(entry: Buffer): void {
    const delivery = fromRequestEntry(entry, this.spec.queue);
    if (!delivery) {
      this.ctx.hub.emitError(
        new Error(
          `A request in '${this.key}' is not one this library wrote (${entry.length} bytes): dropped.`,
        ),
      );
      return;
    }
    this.inFlight++;
    this.handler(delivery)
      .then((settlement) => this.settler.settleRequest(delivery, settlement))
      .then(this.done, (error: Error) => {
        this.ctx.hub.emitError(
          new Error(
            `Could not settle request ${delivery.messageId} of '${this.spec.queue}': ${error.message}`,
            { cause: error },
          ),
        );
        this.done();
      });
  }

  /**
   * Requests taken but not handled here (every slot is taken, or the route was cancelled) go back to
   * the list, where the next pop (of any instance of the route) takes them first.
   */
  private giveBack(entries: Buffer[]): void {
    if (!this.stopped) this.more = true;
    const now = Date.now();
    let lastsMs = 1_000;
    for (const entry of entries) {
      const deadline = fromRequestEntry(entry, this.spec.queue)?.headers[MessagingHeaders.DEADLINE];
      lastsMs = Math.max(lastsMs, typeof deadline === 'number' ? deadline - now : GIVEN_BACK_MS);
    }
    this.givingBack++;
    coalesceWrites(this.ctx.command);
    runScript(
      this.ctx.command,
      this.ctx.keys.sharded ? GIVE_BACK_SCRIPT_SHARDED : GIVE_BACK_SCRIPT,
      1,
      this.key,
      this.channel,
      Math.ceil(lastsMs),
      ...entries,
    )
      .catch((error: Error) => {
        // After close (its wait for give-backs timed out): nobody listens for it any more.
        if (this.ctx.hub.status === 'closed') return;
        this.ctx.hub.emitError(
          new Error(
            `Could not give back ${entries.length} request(s) of '${this.spec.queue}' (their callers time out): ${error.message}`,
            { cause: error },
          ),
        );
      })
      .finally(() => {
        this.givingBack--;
        this.checkIdle();
      });
  }
}
