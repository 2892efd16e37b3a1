/**
 * Releases delayed messages (retries and `delayMs` publishes) when due. JetStream 2.9 has no
 * scheduled messages, so a delayed message is stored in the work-queue stream `<prefix>-delayed`
 * with its due time in `x-nats-due`; the shared durable consumer `delayer` (every instance pulls
 * from it) naks one that is not yet due with the time left, which the server holds durably, and
 * publishes one that is due to its target subject, acking it only after the PubAck. A crash in
 * between redelivers it; the target publish carries the delayed message's sequence as message id,
 * so the stream drops the second copy (within its duplicate window).
 *
 * After a server crash nats-server 2.9 can keep, in the work-queue stream, messages whose acks it
 * had already counted (the consumer's ack floor is past them, so they are never delivered again and
 * the stream never empties), also for messages redelivered and acknowledged well after the restart:
 * when it (re)binds its consumer and then at most every {@link SWEEP_EVERY_MS}, between two pulls,
 * the delayer purges the stream below that floor, which only ever removes messages it acknowledged.
 */
import type { LoggerService } from '@nestjs/common';
import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { BackendEventHub } from '../../backend/backend-events';
import type { NatsLink } from './nats-connection';
import { describe } from './nats-connection';
import { decodeHeaders, NatsHeaders } from './nats-messages';
import { ensureDurable } from './nats-declarations';
import { DELAYER_CONSUMER, type NatsNames } from './nats-topology';
import { TimedWaits } from '../../backend/timed-waits';
import { WireHeaders } from './nats-wire';

/** How long one pull waits for messages before it is renewed. */
export const PULL_EXPIRES_MS = 10_000;

/**
 * Ack wait of the `delayer` consumer: how long a delayed message delivered to an instance that
 * closed or died (or into a pull whose inbox was gone) waits before another instance gets it. A
 * release (a publish and its PubAck) that takes longer is done twice, and the stream drops the
 * second copy by its message id.
 */
export const RELEASE_ACK_WAIT_MS = 5_000;

/** Least time between two purges of acknowledged leftovers (two JetStream API calls each). */
export const SWEEP_EVERY_MS = 10_000;

export interface NatsDelayerContext {
  /** Wait for the server to confirm the ack of a released message (`confirmAcks`). */
  readonly confirmAcks: boolean;
  readonly names: NatsNames;
  readonly prefix: string;
  readonly hub: BackendEventHub;
  readonly logger: Pick<LoggerService, 'warn'>;
  link(): Promise<NatsLink>;
  publish(subject: string, body: Uint8Array, headers: WireHeaders, msgID: string): Promise<void>;
}

export class NatsDelayer {
  private stopped = false;
  private running?: Promise<void>;
  private iter?: ConsumerMessages;
  private readonly inFlight = new Set<Promise<void>>();
  /** Counts reconnections: a pull made before the latest one is renewed. */
  private generation = 0;
  /** The loop's backoff pause: ended by `stop()`. */
  private readonly pauses = new TimedWaits(true);
  /** When to purge acknowledged leftovers next, between two pulls (0: before the next pull). */
  private sweepAt = 0;
  /** Whether a failed sweep was reported (once: it is retried every {@link SWEEP_EVERY_MS}). */
  private sweepWarned = false;

  constructor(private readonly ctx: NatsDelayerContext) {}

  start(): void {
    this.running ??= this.loop();
  }

  /** Renews the pull (after a reconnect the server may have forgotten it). */
  renew(): void {
    this.generation++;
    this.sweepAt = 0;
    this.iter?.stop();
  }

  /** Stops pulling and waits for the releases in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.iter?.stop();
    this.pauses.wakeAll();
    // The loop ends by itself (a request in flight may take its timeout); releases are awaited.
    await Promise.all(this.inFlight);
  }

  private async loop(): Promise<void> {
    let consumer: Consumer | undefined;
    let consumerLink: NatsLink | undefined;
    let failures = 0;
    while (!this.stopped) {
      try {
        const link = await this.ctx.link();
        const { js, jsm } = link;
        // A consumer handle is bound to the connection it was made on: renewed with it.
        if (consumerLink !== link) consumer = undefined;
        if (!consumer) {
          await ensureDurable(jsm, {
            stream: this.ctx.names.delayed,
            name: DELAYER_CONSUMER,
            filter: `${this.ctx.names.delayedPrefix}>`,
            maxAckPending: -1,
            maxDeliver: -1,
            ackWaitMs: RELEASE_ACK_WAIT_MS,
            deliverPolicy: 'all',
          });
          consumer = await js.consumers.get(this.ctx.names.delayed, DELAYER_CONSUMER);
          consumerLink = link;
          this.sweepAt = 0;
        }
        if (Date.now() >= this.sweepAt) {
          // Housekeeping: a sweep that fails (no permission to purge, say) never stops releases.
          await this.sweepAcknowledged(jsm).catch((error) => this.sweepFailed(error));
          this.sweepAt = Date.now() + SWEEP_EVERY_MS;
        }
        const generation = this.generation;
        const iter = await consumer.fetch({ max_messages: 100, expires: PULL_EXPIRES_MS });
        this.iter = iter;
        // Stopped, or reconnected (the pull may have been lost on the wire), while it was made.
        if (this.stopped || generation !== this.generation) iter.stop();
        for await (const msg of iter) this.track(this.release(msg));
        failures = 0;
      } catch (error) {
        if (this.stopped) break;
        // Whatever failed (consumer deleted, connection replaced or closed): declared and got again.
        consumer = undefined;
        // Once per streak of failures: a reconnection must not flood the log.
        if (failures === 0)
          this.ctx.hub.emitError(
            new Error(`NATS delayed messages: ${describe(error)}; pulling again`),
          );
        await this.pauses.wait(Math.min(200 * 2 ** failures++, 5_000));
      } finally {
        this.iter = undefined;
      }
    }
  }

  /**
   * Purges the delayed stream below its consumer's ack floor: every message there was acknowledged,
   * and one still stored was kept by a crash (see above). Returns how many were purged.
   */
  private async sweepAcknowledged(jsm: NatsLink['jsm']): Promise<number> {
    const { delayed } = this.ctx.names;
    const floor = (await jsm.consumers.info(delayed, DELAYER_CONSUMER)).ack_floor.stream_seq;
    if (floor === 0 || (await jsm.streams.info(delayed)).state.first_seq > floor) return 0;
    const { purged } = await jsm.streams.purge(delayed, { seq: floor + 1 });
    if (purged > 0)
      this.ctx.logger.warn(
        `Purged ${purged} delayed message(s) that nats-server kept in '${delayed}' after they were acknowledged (it crashed); they were all released before`,
      );
    return purged;
  }

  private sweepFailed(error: unknown): void {
    if (this.sweepWarned) return;
    this.sweepWarned = true;
    this.ctx.logger.warn(
      `Could not purge acknowledged leftovers of '${this.ctx.names.delayed}' (${describe(error)}); releases go on. Allow this user JetStream's STREAM.INFO, CONSUMER.INFO and STREAM.PURGE on it.`,
    );
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private async release(msg: JsMsg): Promise<void> {
    const due = decodeHeaders(msg.headers).props.due ?? 0;
    const wait = due - Date.now();
    if (wait > 0) {
      try {
        msg.nak(wait);
      } catch {
        // Connection gone: redelivered after the ack wait, and naked again then.
      }
      return;
    }
    const target = `${this.ctx.prefix}.${msg.subject.slice(this.ctx.names.delayedPrefix.length)}`;
    const headers = new WireHeaders();
    for (const [key, values] of msg.headers ?? []) {
      if (key.toLowerCase() === NatsHeaders.DUE || key.toLowerCase().startsWith('nats-')) continue;
      for (const value of values) headers.add(key, value);
    }
    try {
      await this.ctx.publish(target, msg.data, headers, `${this.ctx.names.delayed}:${msg.seq}`);
      // A lost plain ack releases it again after the ack wait, under the same message id: a duplicate.
      if (this.ctx.confirmAcks) await msg.ackAck();
      else msg.ack();
    } catch (error) {
      this.ctx.hub.emitError(
        new Error(
          `could not release a delayed message to '${target}': ${describe(error)}; trying again in 1 s`,
        ),
      );
      try {
        msg.nak(1_000);
      } catch {
        // Connection gone: redelivered after the ack wait.
      }
    }
  }
}
