/**
 * Pulling from one durable consumer without a gap between pulls: a long-lived inbox subscription,
 * and pull requests (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`) sent on it for the room the
 * route has, topped up as handler slots free up instead of one request at a time. nats.js's
 * `fetch()` opens a subscription, a status stream and a heartbeat monitor per pull, and the next one
 * only after the last message of the previous: with fast handlers a route spent most of its time
 * waiting for its next batch. `consume()` keeps the pipe full but pulls for what arrived, not for
 * what the handlers can take, so messages would wait in it without being kept alive.
 *
 * | setting        | value                    | why                                                        |
 * | -------------- | ------------------------ | ---------------------------------------------------------- |
 * | batch          | room left, at least a quarter of the slots (or all the room when nothing is asked) | as `consume()` refills at 75 %: few pull requests, no idle slot for long |
 * | expires        | {@link PULL_EXPIRES_MS}  | a pull that waits that long is renewed (408 says how many it did not deliver) |
 * | idle_heartbeat | {@link PULL_HEARTBEAT_MS}| a pull the server forgot (restart, deleted consumer: a pull to a missing consumer gets no answer) shows as silence: after two heartbeats the puller checks the consumer and asks again |
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { describe } from './nats-connection';

/** How long one pull request waits for messages before it expires (and is renewed). */
export const PULL_EXPIRES_MS = 30_000;
/** The server's heartbeat on a waiting pull; two missed ones mean it is gone. */
export const PULL_HEARTBEAT_MS = 5_000;

const NANOS = 1_000_000;
const ACK = Uint8Array.of(43, 65, 67, 75); // +ACK
const NAK = Uint8Array.of(45, 78, 65, 75); // -NAK
const WPI = Uint8Array.of(43, 87, 80, 73); // +WPI
const encoder = new TextEncoder();

/**
 * A message delivered by a pull: its delivery info read from its ack subject
 * (`$JS.ACK.[<domain>.<account>.]<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ns>.<pending>…`)
 * when first asked, and its acknowledgements. Lighter than nats.js's `JsMsg`, which the pull
 * consumer API builds only for its own iterators.
 */
export class PulledMessage {
  /** Where the info starts in the ack subject (after the domain and account hash when present). */
  private infoAt = -1;

  constructor(readonly msg: Msg) {}

  get subject(): string {
    return this.msg.subject;
  }

  get data(): Uint8Array {
    return this.msg.data;
  }

  /** Stream sequence of the stored message. */
  get seq(): number {
    return Number(this.token(3));
  }

  /** How many times the server delivered it (1 on the first delivery). */
  get deliveryCount(): number {
    return Number(this.token(2));
  }

  get stream(): string {
    return this.token(0);
  }

  /** When the message was stored, in epoch ms. */
  get storedAtMs(): number {
    return Math.floor(Number(this.token(5)) / NANOS);
  }

  /** Acknowledges it (fire and forget: a lost ack is a redelivery after the ack wait). */
  ack(): void {
    this.msg.respond(ACK);
  }

  /** Acknowledges it and waits for the server to confirm (a round trip). */
  async ackConfirmed(nc: NatsConnection, timeoutMs: number): Promise<void> {
    await nc.request(this.msg.reply as string, ACK, { timeout: timeoutMs });
  }

  /** Hands it back: redelivered after `delayMs` (at once without it). */
  nak(delayMs?: number): void {
    this.msg.respond(
      delayMs ? encoder.encode(`-NAK ${JSON.stringify({ delay: delayMs * NANOS })}`) : NAK,
    );
  }

  /** Resets its ack wait: it is being worked on. */
  working(): void {
    this.msg.respond(WPI);
  }

  /**
   * Token `i` of the info after `$JS.ACK.` and the optional domain and account hash, found by
   * scanning the ack subject (no array of its tokens for one number).
   */
  private token(i: number): string {
    const reply = this.msg.reply ?? '';
    if (this.infoAt < 0) {
      let dots = 0;
      for (let at = reply.indexOf('.'); at >= 0; at = reply.indexOf('.', at + 1)) dots++;
      // The old form has 9 tokens: no domain and account hash.
      this.infoAt = skip(reply, 0, dots === 8 ? 2 : 4);
    }
    const start = skip(reply, this.infoAt, i);
    const end = reply.indexOf('.', start);
    return start < 0 ? '' : reply.slice(start, end < 0 ? undefined : end);
  }
}

/** Where the token `count` tokens after the one starting at `from` starts; -1 when there is none. */
function skip(text: string, from: number, count: number): number {
  let at = from;
  for (let i = 0; i < count && at >= 0; i++) {
    const dot = text.indexOf('.', at);
    at = dot < 0 ? -1 : dot + 1;
  }
  return at;
}

/** What a puller needs from the consumer it feeds. */
export interface PullOwner {
  /** Deliveries the route can take now: free handler slots minus those waiting for one. */
  readonly room: number;
  /** Handler slots of the route: a pull asks for a quarter of them at least. */
  readonly slots: number;
  /** A message this puller received. */
  accept(puller: NatsPuller, msg: PulledMessage): void;
  /** The puller's pulls failed (it is not attached any more); reported once per streak. */
  pullFailed(puller: NatsPuller, reason: string): void;
  /** The server answered the puller's pulls again after a failure: the streak is over. */
  pullAnswered(puller: NatsPuller): void;
  /** The puller is attached again (it sent a pull). */
  pullAttached(puller: NatsPuller): void;
  /** Makes sure the stream and this puller's consumer exist; rejects when it cannot. */
  recover(puller: NatsPuller): Promise<void>;
  /** A pause after a failure, ended early when the consumer is cancelled. */
  pause(ms: number): Promise<void>;
}

/** One durable consumer of a route and its pulls. */
export class NatsPuller {
  /** Pulls are working: sent, and nothing said they failed since. */
  attached = false;
  private sub?: Subscription;
  private nc?: NatsConnection;
  /** The subject of its subscription: where its pulls are answered. */
  private inbox = '';
  private nextSubject = '';
  /** Messages asked for and not yet received (nor expired). */
  private asked = 0;
  private lastHeardAt = 0;
  private lastPullAt = 0;
  private recovering = false;
  /** Backoff exponent of the current streak of failures. */
  private failures = 0;
  /** Failed, and not answered by the server since. */
  private failing = false;
  private stopped = false;

  constructor(
    /** Name of the durable consumer. */
    readonly name: string,
    /** Absolute filter subject. */
    readonly filter: string,
    /** Topic patterns it serves; undefined for the queue consumer. */
    readonly patterns: readonly string[] | undefined,
    readonly description: string,
    private readonly stream: string,
    private readonly owner: PullOwner,
  ) {}

  /** Subscribes its inbox on `nc` (a new connection: instead of the old one) and asks for the room. */
  start(nc: NatsConnection, inbox: string): void {
    if (this.stopped) return;
    this.nc = nc;
    this.inbox = inbox;
    this.asked = 0;
    this.nextSubject = `$JS.API.CONSUMER.MSG.NEXT.${this.stream}.${this.name}`;
    this.sub = nc.subscribe(inbox, { callback: (error, msg) => this.receive(error, msg) });
    this.lastHeardAt = Date.now();
    this.pull();
  }

  /** Asks for more messages when the route has room for enough of them. */
  pull(): void {
    if (this.stopped || this.recovering || !this.nc) return;
    const want = this.owner.room - this.asked;
    if (want <= 0 || (this.asked > 0 && want < Math.ceil(this.owner.slots / 4))) return;
    try {
      this.nc.publish(
        this.nextSubject,
        JSON.stringify({
          batch: want,
          expires: PULL_EXPIRES_MS * NANOS,
          idle_heartbeat: PULL_HEARTBEAT_MS * NANOS,
        }),
        { reply: this.inbox },
      );
    } catch (error) {
      // Closed connection: the backend is closing, or its client reconnects and says so.
      this.failed(`could not pull: ${describe(error)}`, false);
      return;
    }
    if (this.asked === 0) this.lastPullAt = Date.now();
    this.asked += want;
    if (!this.attached) {
      this.attached = true;
      this.owner.pullAttached(this);
    }
  }

  /**
   * Every {@link PULL_HEARTBEAT_MS}: a puller that heard nothing for two heartbeats while it waits
   * for messages lost its pulls (a restarted server, a deleted consumer): it checks and asks again.
   */
  check(now: number): void {
    if (this.stopped || this.recovering || this.asked === 0) return;
    const since = Math.max(this.lastHeardAt, this.lastPullAt);
    if (now - since > 2 * PULL_HEARTBEAT_MS + 1_000)
      this.failed(`no heartbeat from the server for ${now - since} ms`, true);
  }

  /** After a reconnection the server may have dropped the pulls: asks again. */
  renew(): void {
    this.asked = 0;
    this.pull();
  }

  /** Stops pulling: what the server still sends to the inbox is dropped (and redelivered later). */
  stop(): void {
    this.stopped = true;
    this.attached = false;
    try {
      this.sub?.unsubscribe();
    } catch {
      // Closed connection: nothing to unsubscribe.
    }
  }

  private receive(error: Error | null, msg: Msg): void {
    if (this.stopped) return;
    if (error) {
      this.failed(`pull subscription failed: ${describe(error)}`, true);
      return;
    }
    this.lastHeardAt = Date.now();
    // Statuses come on the inbox itself; messages with their stream subject.
    if (msg.subject !== this.inbox) {
      if (this.asked > 0) this.asked--;
      if (this.failing) this.answered();
      this.owner.accept(this, new PulledMessage(msg));
      // A message the route does not handle (acked at once) leaves its room free: ask for more.
      this.pull();
      return;
    }
    this.status(msg);
  }

  private status(msg: Msg): void {
    const code = msg.headers?.code ?? 0;
    if (code === 100) {
      if (this.failing) this.answered();
      return;
    }
    const left = Number(msg.headers?.get('Nats-Pending-Messages') || 0);
    const description = (msg.headers?.description ?? '').toLowerCase();
    if (code === 408 || (code === 409 && left > 0)) {
      if (code === 408 && this.failing) this.answered();
      // Expired (or ended) with `left` of its batch undelivered: ask again for them.
      this.asked = Math.max(0, this.asked - left);
      if (code === 409 && /deleted/.test(description)) this.failed(description, true);
      else this.pull();
      return;
    }
    if (code === 409 && /leadership/.test(description)) {
      this.renew();
      return;
    }
    this.failed(`${code} ${description}`.trim(), true);
  }

  /** The server answers the pulls again: the next failure starts a new streak, from a short pause. */
  private answered(): void {
    this.failing = false;
    this.failures = 0;
    this.owner.pullAnswered(this);
  }

  /** Pulls stopped working: reported, then the consumer is checked (declared again if gone). */
  private failed(reason: string, recover: boolean): void {
    if (this.stopped || this.recovering) return;
    this.attached = false;
    this.failing = true;
    this.asked = 0;
    this.owner.pullFailed(this, reason);
    if (!recover) return;
    this.recovering = true;
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
    this.lastHeardAt = Date.now();
    this.pull();
  }
}
