import type { IncomingReply } from './broker-backend.interface';
import { MessagingConfigError, RequestTimeoutError } from '../errors/messaging.errors';

/** One request waiting for its reply: its caller awaits `promise`. */
export interface PendingRequest {
  /** What its reply carries back (a correlation id, a reply subject's token). */
  readonly key: string;
  /** Its topic or queue, named by its errors. */
  readonly target: string;
  readonly promise: Promise<IncomingReply>;
  /** What the backend remembers of it (AMQP: the channel it was written on). */
  tag?: unknown;
}

class Waiting implements PendingRequest {
  readonly promise: Promise<IncomingReply>;
  tag?: unknown;
  timer?: NodeJS.Timeout;
  resolve!: (reply: IncomingReply) => void;
  reject!: (error: Error) => void;

  constructor(
    readonly key: string,
    readonly target: string,
  ) {
    this.promise = new Promise<IncomingReply>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

/**
 * The requests a backend waits replies for, by the key their replies carry (a correlation id, a
 * reply subject's token): one promise and one timer per request, settled once, by its reply, its
 * timeout or a failure. Keys are unique among waiting requests: a reply, or a broker's return,
 * names exactly one (two requests sharing a key would get each other's replies), so a second
 * request with a key already waiting is refused, before it is sent, with an error that says why.
 *
 * Every backend's requester keeps its requests here, so a timeout is a `RequestTimeoutError` naming
 * the target on every broker, and closing fails them all the same way.
 */
export class PendingRequests {
  private readonly waiting = new Map<string, Waiting>();

  /** How many requests wait. */
  get size(): number {
    return this.waiting.size;
  }

  /**
   * A request with `key`: its `promise` resolves with the reply {@link settle}d for the key, rejects
   * with `RequestTimeoutError` for `target` after `timeoutMs`, or with what {@link fail},
   * {@link reject} or {@link failWhere} give. Throws `MessagingConfigError` when a request with `key`
   * already waits (its reply could not be told apart): send nothing then.
   */
  add(key: string, target: string, timeoutMs: number): PendingRequest {
    if (this.waiting.has(key)) {
      throw new MessagingConfigError(
        `A request with correlation id '${key}' to '${target}' already waits for its reply, and replies ` +
          'are told apart by it: give each request in flight its own messageId.',
      );
    }
    const request = new Waiting(key, target);
    request.timer = setTimeout(expire, timeoutMs, this, request, timeoutMs);
    this.waiting.set(key, request);
    return request;
  }

  /** Resolves the request waiting with `key`; false when none waits (a late or stray reply). */
  settle(key: string, reply: IncomingReply): boolean {
    const request = this.take(key);
    if (!request) return false;
    request.resolve(reply);
    return true;
  }

  /** Rejects the request waiting with `key` (the broker returned it); false when none waits. */
  reject(key: string, error: (request: PendingRequest) => Error): boolean {
    const request = this.take(key);
    if (!request) return false;
    request.reject(error(request));
    return true;
  }

  /** Rejects `request` with `error` (its send failed); false when it was settled already. */
  fail(request: PendingRequest, error: Error): boolean {
    const waiting = this.waiting.get(request.key);
    if (waiting !== request) return false;
    this.take(request.key);
    waiting.reject(error);
    return true;
  }

  /** Rejects every request whose tag `select` picks, each with a fresh `error()`. */
  failWhere(select: (tag: unknown) => boolean, error: () => Error): void {
    for (const request of [...this.waiting.values()]) {
      if (select(request.tag)) this.fail(request, error());
    }
  }

  /** Rejects every request (the backend is closing). */
  failAll(error: () => Error): void {
    this.failWhere(() => true, error);
  }

  private take(key: string): Waiting | undefined {
    const request = this.waiting.get(key);
    if (!request) return undefined;
    this.waiting.delete(key);
    clearTimeout(request.timer);
    return request;
  }
}

/** A request's timer: one function for all, so that a request allocates no closure for it. */
function expire(pending: PendingRequests, request: PendingRequest, timeoutMs: number): void {
  pending.fail(request, new RequestTimeoutError(request.target, timeoutMs));
}
