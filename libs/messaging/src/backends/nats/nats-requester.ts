/**
 * Request/reply over core NATS. The request is published to JetStream like any message (so it is
 * routed, durable and retried as the others) with its reply subject in header `x-nats-reply-to`:
 * a JetStream message's own reply subject is its ack subject. Replies come back on one wildcard
 * subscription per backend, `<inbox>.*`, one token per request.
 */
import type { Subscription } from '@nats-io/transport-node';
import type { IncomingReply } from '../../backend/broker-backend.interface';
import { BackendClosedError, RequestTimeoutError } from '../../errors/messaging.errors';
import type { NatsLink } from './nats-connection';
import { toReply } from './nats-messages';

/** Replies are answered only to inbox subjects: a sender cannot make a service publish anywhere. */
export const INBOX_PREFIX = '_INBOX.';

interface Pending {
  resolve(reply: IncomingReply): void;
  reject(error: Error): void;
}

export class NatsRequester {
  private sub?: Subscription;
  private inbox?: string;
  private counter = 0;
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly newInbox: () => string) {}

  /**
   * Waits for the reply to a request sent by `send(replyTo)`; rejects on timeout, on a failed send, or
   * when the backend closes.
   */
  request(
    link: NatsLink,
    target: string,
    timeoutMs: number,
    send: (replyTo: string) => Promise<void>,
  ): Promise<IncomingReply> {
    const token = String(++this.counter);
    const replyTo = `${this.listen(link)}.${token}`;
    return new Promise<IncomingReply>((resolve, reject) => {
      const timer = setTimeout(
        () => settle(() => reject(new RequestTimeoutError(target, timeoutMs))),
        timeoutMs,
      );
      const settle = (then: () => void): void => {
        if (!this.pending.delete(token)) return;
        clearTimeout(timer);
        then();
      };
      this.pending.set(token, {
        resolve: (reply) => settle(() => resolve(reply)),
        reject: (error) => settle(() => reject(error)),
      });
      send(replyTo).catch((error: Error) => settle(() => reject(error)));
    });
  }

  /** Fails every pending request and stops listening. */
  close(): void {
    for (const pending of [...this.pending.values()])
      pending.reject(new BackendClosedError('NatsBackend closed before the reply arrived'));
    this.sub?.unsubscribe();
    this.sub = undefined;
  }

  private listen(link: NatsLink): string {
    if (this.sub && this.inbox && !this.sub.isClosed()) return this.inbox;
    const inbox = this.newInbox();
    this.inbox = inbox;
    this.sub = link.nc.subscribe(`${inbox}.*`, {
      callback: (error, msg) => {
        if (error) return;
        const token = msg.subject.slice(inbox.length + 1);
        this.pending.get(token)?.resolve(toReply(msg.data, msg.headers));
      },
    });
    return inbox;
  }
}
