/**
 * A message delivered by a pull (`nats-pull.ts`), lighter than nats.js's `JsMsg` (which the pull
 * consumer API builds only for its own iterators): its delivery info read from its ack subject
 * when first asked, and its acknowledgements written as the bytes JetStream reads.
 */
import type { Msg, NatsConnection } from '@nats-io/transport-node';

const NANOS = 1_000_000;
const ACK = Uint8Array.of(43, 65, 67, 75); // +ACK
const NAK = Uint8Array.of(45, 78, 65, 75); // -NAK
const WPI = Uint8Array.of(43, 87, 80, 73); // +WPI
const encoder = new TextEncoder();

/**
 * A message delivered by a pull, with its delivery info read from its ack subject
 * (`$JS.ACK.[<domain>.<account>.]<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ns>.<pending>…`).
 */
export class PulledMessage {
  /** Where the info starts in the ack subject (after the domain and account hash when present). */
  private infoAt = -1;
  /**
   * Delivered again as a first delivery by a server that lost its consumer's latest state
   * (`nats-rollback.ts`): it may have been delivered, and handled, before.
   */
  rolledBack = false;

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

  /** The consumer's sequence of this delivery: grows with every delivery the consumer makes. */
  get consumerSeq(): number {
    return Number(this.token(4));
  }

  /** Whether it may have been delivered before: the server says so, or its state went back. */
  get redelivered(): boolean {
    return this.rolledBack || this.deliveryCount > 1;
  }

  get stream(): string {
    return this.token(0);
  }

  /** Messages of its consumer not delivered yet when this one was (to any instance). */
  get pending(): number {
    return Number(this.token(6));
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
