/**
 * The claims of one subscription: `XAUTOCLAIM` of what crashed consumers of its group left pending
 * longer than `claimIdleMs`, and the renewal (`XCLAIM … JUSTID`) of its own deliveries in flight, so
 * that a long handler is never taken over by another instance.
 */
import type { Redis } from 'ioredis';
import { decideDeliveryLimit, type DeliveryLimitVerdict } from '../../backend/delivery-limit';
import type { ResolvedRedisOptions } from './redis-backend.options';

/** A delivery in flight, as the claims see it. */
export interface ClaimedEntry {
  readonly stream: string;
  readonly id: string;
  renewedAt: number;
}

/** What the claims need from their subscription. */
export interface RedisClaimsContext {
  readonly command: Redis;
  readonly options: ResolvedRedisOptions;
  /** The group (the queue). */
  readonly group: string;
  /** This instance's consumer name. */
  readonly consumer: string;
  /** The subscription's deliveries in flight. */
  inFlight(): Iterable<ClaimedEntry>;
  /** How many more deliveries the subscription takes now. */
  free(): number;
  /** Hands a claimed entry to the subscription (`overLimit`: the dead letter to store unhandled). */
  dispatch(stream: string, id: string, raw: Buffer[], overLimit?: DeliveryLimitVerdict): void;
}

/** A delivery claimed from the group's pending entries (`overLimit`: to dead-letter unhandled). */
export interface PendingEntry {
  readonly stream: string;
  readonly id: string;
  readonly raw: Buffer[];
  readonly overLimit?: DeliveryLimitVerdict;
}

type AutoClaimReply = [Buffer, Array<[Buffer, Buffer[] | null]>, Buffer[]];

export class RedisClaims {
  private readonly cursors = new Map<string, string>();

  constructor(private readonly ctx: RedisClaimsContext) {}

  /**
   * Claims deliveries other consumers left pending longer than `claimIdleMs` (crashed or
   * disconnected), as many as there are free slots; one claimed more than `deliveryLimit` times is
   * dead-lettered instead of handled.
   */
  async claimAbandoned(streams: Iterable<string>, stopped: () => boolean): Promise<void> {
    const { command, options, group, consumer } = this.ctx;
    for (const stream of streams) {
      const free = this.ctx.free();
      if (free <= 0 || stopped()) return;
      const cursor = this.cursors.get(stream) ?? '0-0';
      const reply = (await command.callBuffer(
        'XAUTOCLAIM',
        stream,
        group,
        consumer,
        options.claimIdleMs,
        cursor,
        'COUNT',
        free,
      )) as AutoClaimReply;
      this.cursors.set(stream, reply[0].toString('utf8'));
      for (const [idBuffer, raw] of reply[1]) {
        if (!raw) continue;
        const id = idBuffer.toString('utf8');
        this.ctx.dispatch(stream, id, raw, await this.overLimit(stream, id));
      }
    }
  }

  /**
   * Claims every delivery pending in the group, whoever holds it and however recently (a new
   * holder of an exclusive subscription's lease takes over what the last one left), and resolves
   * them in queue order, stream by stream.
   */
  async claimAll(streams: Iterable<string>): Promise<PendingEntry[]> {
    const { command, group, consumer } = this.ctx;
    const claimed: PendingEntry[] = [];
    for (const stream of streams) {
      let cursor = '0-0';
      do {
        const reply = (await command.callBuffer(
          'XAUTOCLAIM',
          stream,
          group,
          consumer,
          0,
          cursor,
          'COUNT',
          100,
        )) as AutoClaimReply;
        cursor = reply[0].toString('utf8');
        for (const [idBuffer, raw] of reply[1]) {
          if (!raw) continue;
          const id = idBuffer.toString('utf8');
          claimed.push({ stream, id, raw, overLimit: await this.overLimit(stream, id) });
        }
      } while (cursor !== '0-0');
    }
    return claimed;
  }

  /** Renews the claim on deliveries in flight here that were not renewed for a third of `claimIdleMs`. */
  async renew(): Promise<void> {
    const now = Date.now();
    const due = now - this.ctx.options.claimIdleMs / 3;
    const byStream = new Map<string, ClaimedEntry[]>();
    for (const entry of this.ctx.inFlight()) {
      if (entry.renewedAt > due) continue;
      const list = byStream.get(entry.stream) ?? [];
      list.push(entry);
      byStream.set(entry.stream, list);
    }
    for (const [stream, entries] of byStream) {
      await this.ctx.command.xclaim(
        stream,
        this.ctx.group,
        this.ctx.consumer,
        0,
        ...entries.map((e) => e.id),
        'JUSTID',
      );
      for (const entry of entries) entry.renewedAt = now;
    }
  }

  /** The dead letter of a claimed delivery past `deliveryLimit`, or `undefined` to handle it. */
  private async overLimit(stream: string, id: string): Promise<DeliveryLimitVerdict | undefined> {
    const deliveries = await this.deliveryCount(stream, id);
    return decideDeliveryLimit({
      deliveries,
      limit: this.ctx.options.deliveryLimit,
      now: new Date(),
    });
  }

  /** How many times Redis delivered entry `id` of `stream` to the group (claims included). */
  private async deliveryCount(stream: string, id: string): Promise<number> {
    const rows = (await this.ctx.command.xpending(stream, this.ctx.group, id, id, 1)) as Array<
      [string, string, number, number]
    >;
    return rows.length > 0 ? Number(rows[0][3]) : 0;
  }
}
