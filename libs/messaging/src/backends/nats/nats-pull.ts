/**
 * Pulling from one durable consumer without a gap between pulls: an inbox subscription, and pull
 * requests (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`) sent on it for what the route's
 * budget gives this consumer (`nats-pull-budget.ts`), topped up as handler slots free up instead of
 * one request at a time. nats.js's `fetch()` opens a subscription, a status stream and a heartbeat
 * monitor per pull, and the next one only after the last message of the previous: with fast
 * handlers a route spent most of its time waiting for its next batch. `consume()` keeps the pipe
 * full but pulls for what arrived, not for what the handlers can take, so messages would wait in it
 * without being kept alive.
 *
 * | pull   | asks                                   | why                                                          |
 * | ------ | -------------------------------------- | ------------------------------------------------------------ |
 * | long   | `expires` {@link PULL_EXPIRES_MS}, `idle_heartbeat` {@link PULL_HEARTBEAT_MS} | waits for messages; 408 says how many it did not deliver; a pull the server forgot (restart, deleted consumer: a pull to a missing consumer gets no answer) shows as silence: after two heartbeats the puller checks the consumer and asks again; a fresh inbox that heard nothing at all, after one ({@link UNHEARD_MS}: on a cluster, pulls sent while the consumer's leader is being elected vanish) |
 * | short  | `expires` {@link ROTATE_MS}             | when the route's room cannot give every consumer a pull: given back soon, so that the others get their turn |
 * | probe  | `no_wait`                              | one message if there is one, else 404 at once: a consumer waiting for its turn while another has messages |
 *
 * **Generations.** A puller's pulls live as long as its inbox has a subscriber: the server drops a
 * pull whose inbox nobody subscribes to. So when its count of what it asked for cannot be trusted
 * any more (after a reconnection its old pulls may or may not have survived; after a failure; to
 * hand its room to another consumer), the puller drains that subscription and subscribes a fresh
 * inbox: its old pulls die with it, and what they still deliver (sent before the server had the
 * unsubscribe) is handed to the route as stale, handled if a slot is free and handed back otherwise.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { describe } from './nats-connection';
import { PulledMessage } from './nats-pulled-message';
import { DeliveryHighWater } from './nats-rollback';

/** How long a long pull waits for messages before it expires (and is renewed). */
export const PULL_EXPIRES_MS = 30_000;
/** The server's heartbeat on a waiting long pull; two missed ones mean it is gone. */
export const PULL_HEARTBEAT_MS = 5_000;
/**
 * Silence after which the long pulls of a fresh inbox that heard nothing yet count as lost: a pull
 * the server took sends a message or a heartbeat within {@link PULL_HEARTBEAT_MS}.
 */
export const UNHEARD_MS = PULL_HEARTBEAT_MS + 2_000;
/** How long a short pull waits: the turn of a consumer when the room is too small for all of them. */
export const ROTATE_MS = 1_000;

const NANOS = 1_000_000;
const LONG = `,"expires":${PULL_EXPIRES_MS * NANOS},"idle_heartbeat":${PULL_HEARTBEAT_MS * NANOS}}`;
const SHORT = `,"expires":${ROTATE_MS * NANOS}}`;
const PROBE = ',"no_wait":true}';

/** How a pull asks: see the table of `nats-pull.ts`. */
export type PullMode = 'long' | 'short' | 'probe';

/** What a puller needs from the consumer it feeds. */
export interface PullOwner {
  /**
   * A message this puller received. `stale` when it comes from a pull the puller gave up (or after
   * it stopped): the route's budget did not count it.
   */
  accept(puller: NatsPuller, msg: PulledMessage, stale: boolean): void;
  /** A pull ended without delivering all it asked for, or the puller can pull again: share the room. */
  topUp(): void;
  /** A fresh inbox subject. */
  inbox(): string;
  /** The puller's pulls failed (it is not attached any more); reported once per streak. */
  pullFailed(puller: NatsPuller, reason: string): void;
  /** The server answered the puller's pulls again after a failure: the streak is over. */
  pullAnswered(puller: NatsPuller): void;
  /** The puller is attached again. */
  pullAttached(puller: NatsPuller): void;
  /** Makes sure the stream and this puller's consumer exist; rejects when it cannot. */
  recover(puller: NatsPuller): Promise<void>;
  /** A pause after a failure, ended early when the consumer is cancelled. */
  pause(ms: number): Promise<void>;
}

/** One durable consumer of a route and its pulls. */
export class NatsPuller {
  /** Pulls can work: subscribed, and nothing said they failed since. */
  attached = false;
  /** Messages asked for on the current inbox and not yet received (nor expired). */
  asked = 0;
  /** The last message said more wait on the consumer: it gets the route's room first. */
  hot = false;
  /** Waited a turn without a pull while nothing could be taken back: probed first. */
  due = false;
  /** When `asked` last became 0. */
  idleSince = Date.now();
  /** A long pull is out (a short one or a probe ends by itself soon). */
  waitsLong = false;
  /** When the last pull was sent, and the last message came. */
  pulledAt = 0;
  deliveredAt = 0;
  /** A probe is out: its 404 gives back the one message it asked for. */
  private probing = false;
  private sub?: Subscription;
  private nc?: NatsConnection;
  /** The subject of the current subscription: where its pulls are answered. */
  private inbox = '';
  private readonly nextSubject: string;
  private heardAt = 0;
  /**
   * When the current inbox was made (or pulled again after a recovery): nothing heard since
   * (`heardAt` not after it) means its pulls may never have reached the server. A sign of life in
   * that very millisecond counts as none; the next heartbeat comes long before {@link UNHEARD_MS}.
   */
  private unheardSince = 0;
  private recovering = false;
  /** Backoff exponent of the current streak of failures. */
  private failures = 0;
  /** Failed, and not answered by the server since. */
  private failing = false;
  private stopped = false;
  /** Subscriptions given up and draining: `stop()` waits for them. */
  private readonly draining = new Set<Promise<void>>();
  /** What this instance received of the consumer: a server that lost its state delivers below it. */
  private readonly highWater = new DeliveryHighWater();

  constructor(
    /** Name of the durable consumer. */
    readonly name: string,
    /** Absolute filter subject. */
    readonly filter: string,
    /** Topic patterns it serves; undefined for the queue consumer. */
    readonly patterns: readonly string[] | undefined,
    readonly description: string,
    stream: string,
    private readonly owner: PullOwner,
  ) {
    this.nextSubject = `$JS.API.CONSUMER.MSG.NEXT.${stream}.${name}`;
  }

  /** Can be given a pull now: subscribed, not recovering, not stopped. */
  get ready(): boolean {
    return this.sub !== undefined && !this.recovering && !this.stopped;
  }

  /**
   * Subscribes a fresh inbox on `nc` (a new connection: instead of the old one); the route's
   * budget then pulls. Throws when `nc` is closed.
   */
  start(nc: NatsConnection): void {
    if (this.stopped) return;
    this.nc = nc;
    this.renew();
    if (this.sub) this.attach();
  }

  /** Asks for `batch` messages (a probe asks for one). */
  pull(batch: number, mode: PullMode): void {
    if (!this.ready || batch <= 0) return;
    const size = mode === 'probe' ? 1 : batch;
    try {
      (this.nc as NatsConnection).publish(
        this.nextSubject,
        `{"batch":${size}${mode === 'long' ? LONG : mode === 'short' ? SHORT : PROBE}`,
        { reply: this.inbox },
      );
    } catch (error) {
      // Closed connection: the backend is closing, or a new connection starts a fresh inbox.
      this.failed(`could not pull: ${describe(error)}`, false);
      return;
    }
    this.pulledAt = Date.now();
    this.asked += size;
    this.probing = mode === 'probe';
    if (mode === 'long') this.waitsLong = true;
    this.due = false;
  }

  /**
   * Every half turn. A puller that heard nothing for two heartbeats while a long pull waits lost
   * its pulls (a restarted server, a deleted consumer): it checks and asks again. On a fresh inbox
   * that has heard nothing at all, one heartbeat and a margin ({@link UNHEARD_MS}) is enough: on a
   * cluster, pulls sent while the consumer's leader is being elected (just after a reconnection
   * to another server, say) vanish without a word. A short pull or a probe is answered within a
   * turn (its message, 408 or 404), but the server (2.9) drops a pull that expires as a message
   * becomes due without a word: one unanswered for two turns is given up and asked again.
   */
  check(now: number): void {
    if (this.stopped || this.recovering || this.asked === 0) return;
    const since = Math.max(this.heardAt, this.pulledAt);
    if (this.waitsLong) {
      const heard = this.heardAt > this.unheardSince;
      if (now - since > (heard ? 2 * PULL_HEARTBEAT_MS + 1_000 : UNHEARD_MS))
        this.failed(
          `no ${heard ? 'heartbeat' : 'answer'} from the server for ${now - since} ms`,
          true,
        );
    } else if (now - since > 2 * ROTATE_MS) {
      this.renew();
      this.owner.topUp();
    }
  }

  /**
   * Gives up its pulls (they may have survived a reconnection or not; or their room goes to
   * another consumer of the route): a fresh inbox, nothing asked on it yet.
   */
  renew(): void {
    if (this.stopped || !this.nc) return;
    this.drain();
    this.asked = 0;
    this.probing = false;
    this.waitsLong = false;
    this.idleSince = Date.now();
    const inbox = this.owner.inbox();
    try {
      const sub: Subscription = this.nc.subscribe(inbox, {
        callback: (error, msg) => this.receive(sub, inbox, error, msg),
      });
      this.sub = sub;
      this.inbox = inbox;
      this.heardAt = this.unheardSince = Date.now();
    } catch (error) {
      // Closed connection: a new one starts the puller again.
      this.failed(`could not subscribe its inbox: ${describe(error)}`, false);
    }
  }

  /**
   * Stops pulling: resolves once the server has the unsubscribe. What it delivers meanwhile is
   * handed to the route as stale (which hands it back).
   */
  stop(): Promise<void> {
    this.stopped = true;
    this.attached = false;
    this.drain();
    return Promise.all(this.draining).then(() => undefined);
  }

  /** Drains the current subscription, if any. */
  private drain(): void {
    const sub = this.sub;
    this.sub = undefined;
    if (!sub) return;
    const done = sub.drain().catch(() => undefined);
    this.draining.add(done);
    void done.then(() => this.draining.delete(done));
  }

  private receive(sub: Subscription, inbox: string, error: Error | null, msg: Msg): void {
    const current = sub === this.sub && !this.stopped;
    if (error) {
      if (current) this.failed(`pull subscription failed: ${describe(error)}`, true);
      return;
    }
    // Statuses come on the inbox itself; messages with their stream subject.
    if (msg.subject === inbox) {
      if (current) this.status(msg);
      return;
    }
    const pulled = new PulledMessage(msg);
    pulled.rolledBack = this.highWater.rolledBack(pulled.seq, pulled.consumerSeq);
    if (!current) {
      this.owner.accept(this, pulled, true);
      return;
    }
    this.heardAt = this.deliveredAt = Date.now();
    if (this.asked > 0 && --this.asked === 0) this.idle(this.heardAt);
    this.probing = false;
    this.hot = pulled.pending > 0;
    if (this.failing) this.answered();
    this.owner.accept(this, pulled, false);
  }

  private status(msg: Msg): void {
    this.heardAt = Date.now();
    const code = msg.headers?.code ?? 0;
    if (code === 100) {
      if (this.failing) this.answered();
      return;
    }
    if (code === 404 && this.probing) {
      // The probe found nothing.
      this.hot = false;
      this.ended(1);
      return;
    }
    const left = Number(msg.headers?.get('Nats-Pending-Messages') || 0);
    const description = (msg.headers?.description ?? '').toLowerCase();
    if (code === 408 || (code === 409 && left > 0)) {
      if (code === 409 && /deleted/.test(description)) {
        this.failed(description, true);
        return;
      }
      if (code === 408) {
        if (this.failing) this.answered();
        this.hot = false;
      }
      // Expired (or ended) with `left` of its batch undelivered.
      this.ended(left);
      return;
    }
    if (code === 409 && /leadership/.test(description)) {
      this.renew();
      this.owner.topUp();
      return;
    }
    this.failed(`${code} ${description}`.trim(), true);
  }

  /** A pull ended with `left` of what it asked for undelivered: the room goes round again. */
  private ended(left: number): void {
    this.probing = false;
    this.asked = Math.max(0, this.asked - left);
    if (this.asked === 0) this.idle(Date.now());
    this.owner.topUp();
  }

  /** Nothing asked any more. */
  private idle(now: number): void {
    this.idleSince = now;
    this.waitsLong = false;
  }

  private attach(): void {
    this.attached = true;
    this.owner.pullAttached(this);
  }

  /** The server answers the pulls again: the next failure starts a new streak, from a short pause. */
  private answered(): void {
    this.failing = false;
    this.failures = 0;
    this.owner.pullAnswered(this);
    if (!this.attached) this.attach();
  }

  /**
   * Pulls stopped working: reported, then (`recover`) the consumer is checked (declared again if
   * gone) and pulled on a fresh inbox, so that no pull of before is counted or left alive.
   */
  private failed(reason: string, recover: boolean): void {
    if (this.stopped || this.recovering) return;
    this.attached = false;
    this.failing = true;
    this.owner.pullFailed(this, reason);
    if (!recover) return;
    this.recovering = true;
    this.renew();
    void this.recoverThenPull();
  }

  private async recoverThenPull(): Promise<void> {
    for (;;) {
      await this.owner.pause(Math.min(200 * 2 ** this.failures++, 5_000));
      if (this.stopped) return;
      try {
        await this.owner.recover(this);
        break;
      } catch (error) {
        this.owner.pullFailed(this, `cannot declare its consumer: ${describe(error)}`);
      }
    }
    this.recovering = false;
    // Pulled again from now, on the fresh inbox that failed() made.
    this.heardAt = this.unheardSince = Date.now();
    if (!this.sub) return;
    this.attach();
    this.owner.topUp();
  }
}
