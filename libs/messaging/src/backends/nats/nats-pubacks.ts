/**
 * The PubAcks of stream publishes, on one inbox subscription per connection (`<inbox>.<token>`),
 * instead of `js.publish()`: nats.js makes every publish a request that allocates a timer promise
 * and, when it ends, a stack-traced `RequestError("cancelled")` nobody reads, and copies the
 * options and sets the message id header through the slow `MsgHdrs.set()`. Here a publish costs
 * one promise; the timeouts are swept by one timer while publishes wait (a PubAck is late by at
 * most {@link SWEEP_MS} beyond its timeout before it counts as missing).
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { describe } from './nats-connection';
import { type WireHeaders } from './nats-wire';

/** How often waiting publishes are checked for their timeout. */
export const SWEEP_MS = 100;

/** A publish the server answered with an error, or did not answer in time. */
export class PubAckError extends Error {
  constructor(
    message: string,
    /** Whether sending it again may succeed: a timeout, a closed or lost connection. */
    readonly retriable: boolean,
    /** No stream took the subject (the server had no responder for it). */
    readonly noStream = false,
  ) {
    super(message);
  }
}

/** One publish waiting for its PubAck. */
class Waiter {
  resolve!: () => void;
  reject!: (error: Error) => void;
  readonly promise = new Promise<void>((resolve, reject) => {
    this.resolve = resolve;
    this.reject = reject;
  });

  constructor(
    readonly subject: string,
    readonly deadline: number,
  ) {}
}

const decoder = new TextDecoder();
/** How a PubAck starts: `{"stream":`. */
const PUBACK_START = new TextEncoder().encode('{"stream":');

function startsWith(data: Uint8Array, start: Uint8Array): boolean {
  if (data.length < start.length) return false;
  for (let i = 0; i < start.length; i++) if (data[i] !== start[i]) return false;
  return true;
}

/**
 * Why the answer to a publish is not a PubAck of the stream, or undefined when it is one. A PubAck
 * (`{"stream":…`) needs no parsing; anything else is read: a JetStream error, or something that is
 * no PubAck at all (a publish counts as stored only when a stream said so).
 */
export function pubAckError(msg: Pick<Msg, 'data' | 'headers'>): PubAckError | undefined {
  // "No responders": no stream listens on the subject (deleted under us).
  if (msg.headers?.code === 503)
    return new PubAckError('no responders: stream not found', false, true);
  const { data } = msg;
  if (startsWith(data, PUBACK_START)) return undefined;
  let ack: { stream?: unknown; error?: { code?: number; err_code?: number; description?: string } };
  try {
    ack = JSON.parse(decoder.decode(data)) as typeof ack;
  } catch {
    ack = {};
  }
  if (!ack?.error) {
    return typeof ack?.stream === 'string'
      ? undefined
      : new PubAckError(
          `not a PubAck: ${JSON.stringify(decoder.decode(data).slice(0, 100))}`,
          false,
        );
  }
  const { code, err_code: errCode, description } = ack.error;
  // 10059: stream not found.
  return new PubAckError(
    `${description ?? 'refused'} (${code}, ${errCode})`,
    false,
    errCode === 10059,
  );
}

export class NatsPubAcks {
  private nc?: NatsConnection;
  private sub?: Subscription;
  private inbox = '';
  private counter = 0;
  private readonly waiting = new Map<string, Waiter>();
  private sweeper?: NodeJS.Timeout;

  constructor(private readonly newInbox: () => string) {}

  /**
   * Publishes to a stream subject on `nc` (`headers` carry its `Nats-Msg-Id`) and resolves with its
   * PubAck; rejects with a {@link PubAckError} when refused or after `timeoutMs`.
   */
  publish(
    nc: NatsConnection,
    subject: string,
    body: Uint8Array,
    headers: WireHeaders,
    timeoutMs: number,
  ): Promise<void> {
    const token = String(++this.counter);
    const reply = `${this.listen(nc)}.${token}`;
    const waiter = new Waiter(subject, Date.now() + timeoutMs);
    try {
      nc.publish(subject, body, { reply, headers });
    } catch (error) {
      const text = describe(error);
      return Promise.reject(new PubAckError(text, /closed|draining|disconnect/i.test(text)));
    }
    this.waiting.set(token, waiter);
    this.sweeper ??= setInterval(() => this.sweep(), SWEEP_MS);
    return waiter.promise;
  }

  /** Fails every waiting publish (the backend is closing). */
  close(): void {
    this.fail(() => true, 'the connection closed before the PubAck came');
    try {
      this.sub?.unsubscribe();
    } catch {
      // Closed connection.
    }
    this.sub = undefined;
  }

  private listen(nc: NatsConnection): string {
    if (this.sub && this.nc === nc && !this.sub.isClosed()) return this.inbox;
    // A new connection: what waited on the old one has no answer coming.
    if (this.nc && this.nc !== nc) this.fail(() => true, 'the connection was replaced');
    const inbox = this.newInbox();
    this.nc = nc;
    this.inbox = inbox;
    this.sub = nc.subscribe(`${inbox}.*`, {
      callback: (error, msg) => {
        if (!error) this.answer(msg.subject.slice(inbox.length + 1), msg);
      },
    });
    return inbox;
  }

  private answer(token: string, msg: Msg): void {
    const waiter = this.waiting.get(token);
    if (!waiter) return;
    this.waiting.delete(token);
    const refused = pubAckError(msg);
    if (refused) waiter.reject(refused);
    else waiter.resolve();
  }

  private sweep(): void {
    const now = Date.now();
    this.fail((w) => w.deadline <= now, 'timeout: no PubAck');
  }

  private fail(select: (waiter: Waiter) => boolean, reason: string): void {
    for (const [token, waiter] of this.waiting) {
      if (!select(waiter)) continue;
      this.waiting.delete(token);
      waiter.reject(new PubAckError(reason, true));
    }
    if (this.waiting.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }
}
