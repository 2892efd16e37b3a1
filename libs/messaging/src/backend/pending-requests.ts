import type { IncomingReply } from './broker-backend.interface';
import { RequestTimeoutError } from '../errors/messaging.errors';

/** One request waiting for its reply: `promise` is what its caller awaits. */
export class PendingRequest {
  readonly promise: Promise<IncomingReply>;
  /** What the backend remembers of it (AMQP: the channel it was written on). */
  tag?: unknown;
  /** Another request with the same key, sent after this one. */
  next?: PendingRequest;
  timer?: NodeJS.Timeout;
  resolve!: (reply: IncomingReply) => void;
  reject!: (error: Error) => void;

  constructor(
    readonly key: string,
    /** Its topic or queue, named by its errors. */
    readonly target: string,
  ) {
    this.promise = new Promise<IncomingReply>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

/**
 * The requests a backend waits replies for, by the key its replies carry (a correlation id, a reply
 * subject's token): one promise and one timer per request, settled once, by its reply, its timeout
 * or a failure. Two requests may share a key (a caller may reuse a message id): replies to it settle
 * them in the order they were sent.
 *
 * Every backend's requester keeps its requests here, so a timeout is a `RequestTimeoutError` naming
 * the target on every broker, and closing fails them all the same way.
 */
export class PendingRequests {
  private readonly waiting = new Map<string, PendingRequest>();

  /** How many keys have a request waiting. */
  get size(): number {
    return this.waiting.size;
  }

  /**
   * A request with `key`: its `promise` resolves with the first reply {@link settle}d for the key,
   * rejects with `RequestTimeoutError` for `target` after `timeoutMs`, or with what {@link fail} or
   * {@link failWhere} give.
   */
  add(key: string, target: string, timeoutMs: number): PendingRequest {
    const request = new PendingRequest(key, target);
    request.timer = setTimeout(expire, timeoutMs, this, request, timeoutMs);
    const first = this.waiting.get(key);
    if (!first) {
      this.waiting.set(key, request);
    } else {
      let last = first;
      while (last.next) last = last.next;
      last.next = request;
    }
    return request;
  }

  /** Resolves the oldest request waiting with `key`; false when none waits (a late or stray reply). */
  settle(key: string, reply: IncomingReply): boolean {
    const request = this.waiting.get(key);
    if (!request || !this.remove(request)) return false;
    request.resolve(reply);
    return true;
  }

  /** Rejects the oldest request waiting with `key` (the broker returned it); false when none waits. */
  reject(key: string, error: (request: PendingRequest) => Error): boolean {
    const request = this.waiting.get(key);
    return request !== undefined && this.fail(request, error(request));
  }

  /** Rejects `request` with `error` (its send failed, nobody can receive it); false if settled. */
  fail(request: PendingRequest, error: Error): boolean {
    if (!this.remove(request)) return false;
    request.reject(error);
    return true;
  }

  /** Rejects every request whose tag `select` picks, each with a fresh `error()`. */
  failWhere(select: (tag: unknown) => boolean, error: () => Error): void {
    for (const first of [...this.waiting.values()]) {
      let request: PendingRequest | undefined = first;
      while (request) {
        const next: PendingRequest | undefined = request.next;
        if (select(request.tag)) this.fail(request, error());
        request = next;
      }
    }
  }

  /** Rejects every request (the backend is closing). */
  failAll(error: () => Error): void {
    this.failWhere(() => true, error);
  }

  /** Unlinks `request` and clears its timer; false when it was settled already. */
  remove(request: PendingRequest): boolean {
    const first = this.waiting.get(request.key);
    if (first === request) {
      if (request.next) this.waiting.set(request.key, request.next);
      else this.waiting.delete(request.key);
    } else {
      let before = first;
      while (before && before.next !== request) before = before.next;
      if (!before) return false;
      before.next = request.next;
    }
    request.next = undefined;
    clearTimeout(request.timer);
    return true;
  }
}

/** A request's timer: one function for all, so that a request allocates no closure for it. */
function expire(pending: PendingRequests, request: PendingRequest, timeoutMs: number): void {
  pending.fail(request, new RequestTimeoutError(request.target, timeoutMs));
}
