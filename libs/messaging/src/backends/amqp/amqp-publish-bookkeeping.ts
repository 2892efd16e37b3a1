/**
 * The small bookkeeping of {@link AmqpPublisher}, each part on its own:
 *
 * | part                  | keeps                                           | why                                                    |
 * | --------------------- | ----------------------------------------------- | ------------------------------------------------------ |
 * | `PublishDeadlines`    | publishes not yet settled, by deadline           | each fails with a timeout, at most one timer for most   |
 * | `PublishWindow`       | publishes written and not yet confirmed          | at most `maxInFlightPublishes`; the others wait in order |
 * | `ReturnedMessages`    | `basic.return`s not yet met by their confirm     | a return comes before the ack, which is still an ack   |
 * | `channelErrorRefusal` | nothing: a decision                              | which publish a channel error names, so only it fails  |
 * | `Pending`             | one publish until it settles                     | what a re-send or a timeout needs of it                |
 */
import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import { MessageFifo } from '../../backend/message-fifo';
import { PublishFailedError } from '../../errors/messaging.errors';
import type { PublishCommand } from './amqp-publish-command';

/** One publish waiting for its confirm (or for a channel, a slot, a drained buffer first). */
export interface Pending {
  /** `CONFIRMED` once the broker confirmed it: a settled publish may wait in `byDeadline` behind an
   * older one still unconfirmed, and must not hold its content there. */
  command: PublishCommand;
  readonly deadline: number;
  settled: boolean;
  holdsSlot: boolean;
  /** Written on a channel (else it timed out waiting for one, a slot or a drained buffer). */
  written: boolean;
  /** The channel it was last written on. */
  channel?: ConfirmChannel;
  /** Times it was written again after its channel closed with a channel error. */
  resends: number;
  /** Times it was written again after a nack. */
  nacks: number;
  resolve(): void;
  reject(error: Error): void;
}

/** What a confirmed publish keeps of its command. */
export const CONFIRMED: PublishCommand = Object.freeze({
  exchange: '',
  routingKey: '',
  content: Buffer.alloc(0),
  properties: {},
  target: '',
});
export const settledAlready = (): void => undefined;

/** amqplib's errors for the confirms a closing channel will never get, and for a nack. */
export const CHANNEL_CLOSED = 'channel closed';
export const NACKED = 'message nacked';
/**
 * A publish the broker nacks goes again this many times (on the same channel, or on a new one
 * opened after a growing pause when its channel nacks twice in a row), then fails.
 */
export const MAX_RESENDS_AFTER_NACK = 3;

/** What {@link PublishDeadlines} needs of a pending publish. */
export interface WithDeadline {
  /** `performance.now()` time at which it times out. */
  readonly deadline: number;
  readonly settled: boolean;
}

/**
 * Times out pending publishes. Those with the default timeout share one timer: their deadlines come
 * in the order they were made, so it is armed for the oldest, and settled ones leave from the head
 * (confirms come mostly in order, so the queue stays short). A publish with a timeout of its own (a
 * request) has its own timer. No timer keeps the process alive: a publish waits on a socket or a
 * reconnection, which do.
 */
export class PublishDeadlines<P extends WithDeadline> {
  private readonly byDeadline = new MessageFifo<P>();
  private readonly own = new Map<P, NodeJS.Timeout>();
  private timer?: NodeJS.Timeout;

  constructor(private readonly expire: (pending: P) => void) {}

  /** Watches `pending`; `ownTimeoutMs` when it has a timeout of its own. */
  add(pending: P, ownTimeoutMs?: number): void {
    if (ownTimeoutMs === undefined) {
      this.byDeadline.push(pending);
      if (!this.timer) this.arm();
    } else {
      this.own.set(pending, setTimeout(() => this.expire(pending), ownTimeoutMs).unref());
    }
  }

  /** `pending` settled: stops its own timer, and lets the settled head leave. */
  settled(pending: P): void {
    const timer = this.own.get(pending);
    if (timer) {
      clearTimeout(timer);
      this.own.delete(pending);
    }
    while (this.byDeadline.peek()?.settled) this.byDeadline.shift();
  }

  /** Every publish still watched, oldest first; stops watching (the publisher is closing). */
  takeAll(): P[] {
    clearTimeout(this.timer);
    this.timer = undefined;
    const all: P[] = [];
    for (let p = this.byDeadline.shift(); p; p = this.byDeadline.shift()) all.push(p);
    for (const [p, timer] of this.own) {
      clearTimeout(timer);
      all.push(p);
    }
    this.own.clear();
    return all;
  }

  private arm(): void {
    const head = this.byDeadline.peek();
    if (!head) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        const now = performance.now();
        for (let p = this.byDeadline.peek(); p && p.deadline <= now; p = this.byDeadline.peek()) {
          this.expire(p);
          if (this.byDeadline.peek() === p) this.byDeadline.shift();
        }
        this.arm();
      },
      Math.max(0, head.deadline - performance.now()),
    ).unref();
  }
}

/** Counts publishes in flight; a publish beyond the limit waits for a slot, first come first served. */
export class PublishWindow {
  private inFlight = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  /** A slot at once, when one is free and nobody waits for one; false otherwise. */
  tryTake(): boolean {
    if (this.inFlight >= this.limit || this.waiters.length > 0) return false;
    this.inFlight++;
    return true;
  }

  /** Resolves when a slot is taken. */
  take(): Promise<void> {
    if (this.inFlight < this.limit) {
      this.inFlight++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.waiters.push(() => {
        this.inFlight++;
        resolve();
      });
    });
  }

  /** Frees a slot: the oldest waiter takes it. */
  release(): void {
    this.inFlight--;
    this.waiters.shift()?.();
  }

  /** Lets every waiter through (the publisher is closing; each then sees that). */
  releaseAll(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }
}

/** Returned messages, by message id, exchange and routing key, until their confirm takes them. */
export class ReturnedMessages {
  private readonly returns = new Map<string, number>();

  record(msg: ConsumeMessage): void {
    const key = returnKey(msg.properties.messageId, msg.fields.exchange, msg.fields.routingKey);
    this.returns.set(key, (this.returns.get(key) ?? 0) + 1);
  }

  /** Whether the broker returned `command`, forgetting that return; looked up only when one waits. */
  take(command: PublishCommand): boolean {
    if (command.properties.mandatory !== true || this.returns.size === 0) return false;
    const key = returnKey(command.properties.messageId, command.exchange, command.routingKey);
    const count = this.returns.get(key);
    if (count === undefined) return false;
    if (count > 1) this.returns.set(key, count - 1);
    else this.returns.delete(key);
    return true;
  }

  /** The channel closed: its publishes will never be confirmed there, so their returns never met. */
  clear(): void {
    this.returns.clear();
  }
}

/** Writes again after channel errors that name no publish: the one at fault meets it every time. */
export const MAX_RESENDS_AFTER_CHANNEL_ERROR = 2;

/**
 * Why a publish whose channel closed before its confirm must not be written again: the channel's
 * error names it (its exchange is gone, its body is over the broker's size limit), or channel errors
 * closed its channel `resends` times already. Undefined when it should go again on the next channel:
 * the connection was lost (no `channelError`), or the error is another publish's.
 */
export function channelErrorRefusal(
  command: PublishCommand,
  channelError: Error | undefined,
  resends: number,
): PublishFailedError | undefined {
  if (!channelError) return undefined;
  const names =
    (command.exchange !== '' &&
      channelError.message.includes(`no exchange '${command.exchange}'`)) ||
    channelError.message.includes(`message size ${command.content.length} `);
  if (!names && resends < MAX_RESENDS_AFTER_CHANNEL_ERROR) return undefined;
  return new PublishFailedError(
    `RabbitMQ closed the channel of the publish to '${command.target}': ${channelError.message}`,
  );
}

function returnKey(messageId: unknown, exchange: string, routingKey: string): string {
  return `${String(messageId)}\u0000${exchange}\u0000${routingKey}`;
}
