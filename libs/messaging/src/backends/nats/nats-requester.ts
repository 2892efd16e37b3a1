/**
 * Request/reply over core NATS. Replies come back on one wildcard subscription per backend,
 * `<inbox>.*`, one token per request, and the waiting requests live in `PendingRequests` (one
 * promise and one timer each; a busy refusal finds its request's count of refusals by a scan of
 * them).
 *
 * - Volatile (the default): the request is a core NATS message to `<prefix>.rq.<topic>`, which the
 *   routes of that topic subscribe in queue groups (`nats-responder.ts`). No route subscribed: the
 *   server answers "no responders" (status 503) at once, and the request fails with
 *   `UnroutableError`. A route that holds too many requests refuses one (`PublishBackpressureError`
 *   once every route that takes the topic refused it: one of several services may still answer);
 *   a route whose filter is wider than its patterns declines one it does not match, and the request
 *   fails as unroutable when no route of any process matches its topic (when one does, its reply
 *   is awaited: it times out if that route has no instance now).
 * - Durable (`durable: true`, or a request to a named queue): published to JetStream like any
 *   message (routed, stored, retried as the others), its reply subject in header `x-nats-reply-to`
 *   (a JetStream message's own reply subject is its ack subject).
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { IncomingReply } from '../../backend/broker-backend.interface';
import { type PendingRequest, PendingRequests } from '../../backend/pending-requests';
import {
  BackendClosedError,
  PublishBackpressureError,
  UnroutableError,
} from '../../errors/messaging.errors';
import { decodeHeaders, Refusal } from './nats-messages';
import { headersOf, statusOf, type WireHeaders } from './nats-wire';

/** Replies are answered only to inbox subjects: a sender cannot make a service publish anywhere. */
export const INBOX_PREFIX = '_INBOX.';

/** What a waiting request remembers (its `tag`): which token, and to what it was sent. */
class Sent {
  /** Routes that refused it because they hold too many requests already. */
  busy = 0;

  constructor(
    readonly token: string,
    readonly target: string,
  ) {}
}

export class NatsRequester {
  private sub?: Subscription;
  private inbox = '';
  private counter = 0;
  private readonly pending = new PendingRequests();

  /**
   * @param newInbox a fresh inbox subject
   * @param routed whether a route of any process matches a topic (for a declined request)
   * @param routes how many routes of all processes match a topic (for a refused request)
   */
  constructor(
    private readonly newInbox: () => string,
    private readonly routed: (topic: string) => Promise<boolean>,
    private readonly routes: (topic: string) => Promise<number>,
  ) {}

  /**
   * Sends a volatile request to `subject` on `nc` and waits for the first reply; rejects with
   * `UnroutableError` when nobody consumes it now, `RequestTimeoutError` after `timeoutMs`.
   */
  request(
    nc: NatsConnection,
    subject: string,
    target: string,
    body: Uint8Array,
    headers: WireHeaders,
    timeoutMs: number,
  ): Promise<IncomingReply> {
    const [request, replyTo] = this.add(nc, target, timeoutMs);
    try {
      nc.publish(subject, body, { reply: replyTo, headers });
    } catch (error) {
      this.pending.fail(request, error instanceof Error ? error : new Error(String(error)));
    }
    return request.promise;
  }

  /** Waits for the reply to a durable request, which `send(replyTo)` publishes (and confirms). */
  requestDurable(
    nc: NatsConnection,
    target: string,
    timeoutMs: number,
    send: (replyTo: string) => Promise<void>,
  ): Promise<IncomingReply> {
    const [request, replyTo] = this.add(nc, target, timeoutMs);
    send(replyTo).catch((error: Error) => this.pending.fail(request, error));
    return request.promise;
  }

  /** Fails every pending request and stops listening. */
  close(): void {
    this.pending.failAll(
      () => new BackendClosedError('NatsBackend closed before the reply arrived'),
    );
    try {
      this.sub?.unsubscribe();
    } catch {
      // Closed connection.
    }
    this.sub = undefined;
  }

  private add(nc: NatsConnection, target: string, timeoutMs: number): [PendingRequest, string] {
    const token = String(++this.counter);
    const replyTo = `${this.listen(nc)}.${token}`;
    const request = this.pending.add(token, target, timeoutMs);
    request.tag = new Sent(token, target);
    return [request, replyTo];
  }

  private listen(nc: NatsConnection): string {
    if (this.sub && !this.sub.isClosed()) return this.inbox;
    const inbox = this.newInbox();
    this.inbox = inbox;
    this.sub = nc.subscribe(`${inbox}.*`, {
      callback: (error, msg) => {
        if (!error) this.receive(msg, msg.subject.slice(inbox.length + 1));
      },
    });
    return inbox;
  }

  private receive(msg: Msg, token: string): void {
    // "No responders": nobody subscribes to the request's subject now.
    const source = headersOf(msg);
    if (statusOf(source) === 503) {
      this.failToken(token, (target) => new UnroutableError(target));
      return;
    }
    const { headers, props } = decodeHeaders(source);
    if (props.refusal === undefined) {
      this.pending.settle(token, {
        body: Buffer.from(msg.data),
        headers,
        contentType: props.contentType,
        contentEncoding: props.contentEncoding,
      });
    } else if (props.refusal === Refusal.BUSY) {
      void this.refused(token);
    } else if (props.refusal === Refusal.DECLINED) {
      void this.declined(token, Buffer.from(msg.data).toString('utf8'));
    }
  }

  /**
   * A route whose NATS filter is wider than its patterns got the request on `topic` and does not
   * match it: unroutable, unless a route of some process does match (its reply, if it consumes
   * now, is awaited).
   */
  private async declined(token: string, topic: string): Promise<void> {
    if (await this.routed(topic).catch(() => true)) return;
    this.failToken(token, (target) => new UnroutableError(target));
  }

  /**
   * A route that got the request holds too many requests already: the request fails at once
   * (`PublishBackpressureError`) when every route that takes its topic refused it; while one may
   * still answer, its reply is awaited.
   */
  private async refused(token: string): Promise<void> {
    const sent = this.sentWith(token);
    if (!sent) return;
    const refusals = ++sent.busy;
    if (refusals < (await this.routes(sent.target).catch(() => 1))) return;
    this.failToken(
      token,
      (target) =>
        new PublishBackpressureError(
          `The request on '${target}' was refused: the instance that got it holds maxWaitingRequests ` +
            "requests of that route already. Send fewer at once, or raise the route's concurrency or " +
            "the server's maxWaitingRequests.",
        ),
    );
  }

  /**
   * What the request waiting with `token` remembers. `PendingRequests` takes a request by its key
   * only to settle or reject it, so its tag is found by a scan (that selects none to fail), which
   * only busy refusals need.
   */
  private sentWith(token: string): Sent | undefined {
    let sent: Sent | undefined;
    this.pending.failWhere(
      (tag) => {
        if ((tag as Sent).token === token) sent = tag as Sent;
        return false;
      },
      () => new Error('never thrown: nothing is selected'),
    );
    return sent;
  }

  /** Fails the request waiting with `token` (if it still waits) with `error(target)`. */
  private failToken(token: string, error: (target: string) => Error): void {
    this.pending.reject(token, (request) => error(request.target));
  }
}
