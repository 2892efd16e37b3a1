/**
 * One pull budget for all the durable consumers of a route (one per NATS filter of its topics, one
 * for its queue): together they never ask for more messages than the route has free handler slots,
 * so the server hands an instance at most `concurrency` deliveries of the route and keeps the rest
 * for any instance with a free slot. (Each asking for the whole room on its own, a route of three
 * consumers held three times its concurrency.)
 *
 * | room left                                   | who asks                                                 |
 * | ------------------------------------------- | -------------------------------------------------------- |
 * | enough for a pull of every consumer, and more | each idle consumer keeps a long pull of one waiting; the rest goes to the consumers whose last message said more wait (split evenly), else to the one that got a message last |
 * | less                                        | the consumers waiting their turn are probed (`no_wait`: one message or 404 at once), then the busy consumers pull, then idle ones take short pulls, the one that got a message last first |
 *
 * Every {@link ROTATE_MS} a consumer left without a pull for that long gets its turn: a long pull
 * that delivered nothing while it waits is given up (its puller renews its inbox) when that frees
 * the room it needs, and otherwise it is probed as soon as a slot frees. A pull asked on top of
 * others asks for a quarter of the slots at least, as `consume()` refills at 75 %: few pull
 * requests, no idle slot for long.
 */
import { type NatsPuller, ROTATE_MS } from './nats-pull';

export class NatsPullBudget {
  /** The smallest top-up of a consumer that has a pull out already. */
  private readonly quantum: number;

  constructor(
    private readonly pullers: readonly NatsPuller[],
    slots: number,
  ) {
    this.quantum = Math.max(1, Math.ceil(slots / 4));
  }

  /** Messages asked for by all the consumers of the route and not received yet. */
  asked(): number {
    let asked = 0;
    for (const p of this.pullers) asked += p.asked;
    return asked;
  }

  /** Shares `room` (free handler slots) minus what is asked for already among the consumers. */
  topUp(room: number): void {
    let free = room - this.asked();
    if (free <= 0) return;
    let idle = 0;
    let hot = 0;
    let warm: NatsPuller | undefined;
    for (const p of this.pullers) {
      if (!p.ready) continue;
      if (p.hot) hot++;
      else if (p.asked === 0) idle++;
      if (!warm || p.deliveredAt > warm.deliveredAt) warm = p;
    }
    // Without busy consumers, the one that got a message last takes what the idle ones leave.
    const taker = hot === 0 ? warm : undefined;
    if (free > idle - (taker && taker.asked === 0 ? 1 : 0)) {
      for (const p of this.pullers) {
        if (p !== taker && p.ready && !p.hot && p.asked === 0) {
          p.pull(1, 'long');
          free--;
        }
      }
      if (hot > 0) this.share(free, hot);
      else if (taker && (taker.asked === 0 || free >= this.quantum)) taker.pull(free, 'long');
      return;
    }
    // Not enough for everyone: probe who waited a turn, then the busy ones, then take turns.
    for (const p of this.pullers) {
      if (free === 0) return;
      if (p.due && p.ready && !p.hot && p.asked === 0) {
        p.pull(1, 'probe');
        free--;
      }
    }
    if (hot > 0) free = this.share(free, hot);
    if (free > 0 && warm && !warm.hot && warm.asked === 0) {
      warm.pull(1, 'short');
      free--;
    }
    for (const p of this.pullers) {
      if (free === 0) return;
      if (p.ready && !p.hot && p.asked === 0) {
        p.pull(1, 'short');
        free--;
      }
    }
  }

  /**
   * Every half {@link ROTATE_MS}: a consumer without a pull for {@link ROTATE_MS} gets its turn.
   * The long pulls that delivered nothing for as long are given up, as far as that frees room for
   * those waiting; the others are probed at the next free slot.
   */
  turn(room: number, now: number): void {
    let waiting = 0;
    for (const p of this.pullers) {
      if (p.ready && p.asked === 0 && now - p.idleSince >= ROTATE_MS) {
        waiting++;
        if (!p.hot) p.due = true;
      }
    }
    if (waiting === 0) return;
    let free = room - this.asked();
    for (const p of this.pullers) {
      if (free >= waiting) break;
      if (
        p.ready &&
        p.waitsLong &&
        !p.hot &&
        now - Math.max(p.pulledAt, p.deliveredAt) >= ROTATE_MS
      ) {
        free += p.asked;
        p.renew();
      }
    }
    this.topUp(room);
  }

  /** Splits `free` among the `hot` consumers; returns what is left. */
  private share(free: number, hot: number): number {
    let left = free;
    let count = hot;
    for (const p of this.pullers) {
      if (left <= 0) break;
      if (!p.ready || !p.hot) continue;
      const give = Math.ceil(left / count--);
      if (p.asked === 0 || give >= this.quantum) {
        p.pull(give, 'long');
        left -= give;
      }
    }
    return left;
  }
}
