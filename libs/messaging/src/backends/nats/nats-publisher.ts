/**
 * Publishing to the streams of {@link NatsBackend}: a message to its topic or queue subject (or
 * through the delayed stream), the unroutable check of a mandatory publish, and the PubAck wait of
 * every publish (retry copies, dead letters and releases of delayed messages included), sent again
 * under the same message id when the connection dropped it.
 */
import { messageTarget } from '../../backend/request-guards';
import { randomBytes } from 'node:crypto';
import type { OutgoingMessage } from '../../backend/broker-backend.interface';
import {
  MessagingConfigError,
  MessagingError,
  PublishFailedError,
  PublishTimeoutError,
  UnroutableError,
} from '../../errors/messaging.errors';
import type { ResolvedNatsOptions } from './nats-backend.options';
import { describe, type NatsLink } from './nats-connection';
import { encodeHeaders, outgoingProperties } from './nats-messages';
import { NatsPubAcks, PubAckError } from './nats-pubacks';
import { type NatsRoutes, RouteLookupError } from './nats-routes';
import { ensureStreams } from './nats-declarations';
import { assertSubjectName, type NatsNames } from './nats-topology';
import type { WireHeaders } from './nats-wire';

/** What publishing needs from the backend. */
export interface NatsPublisherContext {
  readonly options: ResolvedNatsOptions;
  readonly names: NatsNames;
  readonly routes: NatsRoutes;
  /** The link, connecting on first use. */
  link(): Promise<NatsLink>;
  /** The link when connected (also while the client reconnects: it buffers what is sent). */
  current(): NatsLink | undefined;
  /** Resolves once connected (at once when it is), or at `deadline`: whether it is connected. */
  whenConnected(deadline: number): Promise<boolean>;
  /** A fresh inbox subject. */
  inbox(): string;
  /** Whether the backend is closing: a publish is not sent again then. */
  closing(): boolean;
}

/** This process's part of the message ids {@link freshMsgId} makes: 72 random bits. */
const PROCESS_ID = randomBytes(9).toString('base64url');
let published = 0;

/**
 * A JetStream message id (`Nats-Msg-Id`, what the stream deduplicates a publish sent again by) for
 * a publish that has none of its own: unique to this process and publish, shorter and cheaper than
 * a UUID (a publish's headers are sent and parsed with every message).
 */
export function freshMsgId(): string {
  return `${PROCESS_ID}${(++published).toString(36)}`;
}

/** First pause before a publish no stream took goes again; it doubles up to the next. */
const NO_STREAM_PAUSE_MS = 100;
const MAX_NO_STREAM_PAUSE_MS = 1_000;

export class NatsPublisher {
  private readonly pubAcks: NatsPubAcks;
  /** The check of the streams under way (one for every publish that met no stream). */
  private checking?: Promise<void>;
  /** When the last check that found (or made) the streams began. */
  private streamsFoundAt = 0;

  constructor(private readonly ctx: NatsPublisherContext) {
    this.pubAcks = new NatsPubAcks(() => ctx.inbox());
  }

  /** Fails the publishes still waiting for their PubAck (the connection is closed). */
  close(): void {
    this.pubAcks.close();
  }

  /**
   * Publishes `message` to its topic or queue subject, or through the delayed stream: the route
   * lookup of a mandatory one and the PubAck within `publishTimeoutMs` in all.
   */
  async send(message: OutgoingMessage, mandatory: boolean, replyTo?: string): Promise<void> {
    const deadline = Date.now() + this.ctx.options.publishTimeoutMs;
    const target = this.targetOf(message);
    if (
      message.delayMs !== undefined &&
      (!Number.isFinite(message.delayMs) || message.delayMs < 0)
    ) {
      throw new MessagingConfigError(
        `delayMs must be a finite number >= 0, got ${message.delayMs}`,
      );
    }
    if (mandatory && (message.queue !== undefined || !this.ctx.routes.knowsTopic(target)))
      await this.assertRoutable(message, deadline);
    const { names } = this.ctx;
    const delayMs = message.delayMs ?? 0;
    const subject =
      message.queue !== undefined ? names.queueSubject(target) : names.topicSubject(target);
    const props = outgoingProperties(message);
    const headers = encodeHeaders(
      message.headers,
      replyTo === undefined && delayMs === 0
        ? props
        : {
            ...props,
            replyTo,
            due: delayMs > 0 ? Date.now() + delayMs : undefined,
            // A delayed send to a queue is a copy that says its topic, as the other backends' are.
            topic: delayMs > 0 && message.queue !== undefined ? target : undefined,
          },
    );
    await this.publish(
      delayMs > 0 ? names.delayedSubject(subject) : subject,
      message.body,
      headers,
      undefined,
      deadline,
    );
  }

  /**
   * Rejects with `UnroutableError` when no route of any process takes `message`. A lookup the
   * connection lost (no answer, JetStream not back yet after a restart, a closed connection) is
   * made again once connected, until `deadline`: then `PublishTimeoutError`, never the client's
   * own error; `PublishFailedError` when the server refuses it (permissions).
   */
  async assertRoutable(message: OutgoingMessage, deadline: number): Promise<void> {
    const { routes, options } = this.ctx;
    const what =
      message.topic !== undefined ? `topic '${message.topic}'` : `queue '${message.queue}'`;
    for (;;) {
      const startedAt = Date.now();
      let error: unknown;
      try {
        const link = await this.connected(deadline);
        if (link) {
          const routed = await beforeDeadline(
            message.queue !== undefined
              ? routes.hasQueue(link.jsm, message.queue)
              : routes.hasTopic(link.jsm, message.topic as string),
            deadline,
          );
          if (routed) return;
          throw new UnroutableError(message.topic ?? `queue ${message.queue}`);
        }
      } catch (e) {
        // The library's own errors (unroutable, a first connection that failed) say it all.
        if (e instanceof MessagingError) throw e;
        error = e;
      }
      if (error !== undefined && /permission/i.test(describe(error))) {
        throw new PublishFailedError(
          `NATS refused the route lookup of a publish to ${what}: ${describe(error)}. ` +
            'Give this user access to the JetStream API ($JS.API.>).',
          { cause: error },
        );
      }
      if (Date.now() >= deadline || this.ctx.closing()) {
        throw new PublishTimeoutError(
          `NATS did not answer the route lookup of a publish to ${what} within ` +
            `${options.publishTimeoutMs} ms (${error === undefined ? 'not connected' : describe(error)}); ` +
            'nothing was published. Publish again once the server is reachable, or raise publishTimeoutMs.',
          { cause: error },
        );
      }
      // Failed at once (JetStream not answering yet): pause instead of spinning until the deadline.
      if (Date.now() - startedAt < 100) await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * The link once connected: on first use it connects; while the client reconnects, it waits for
   * the reconnection (until `deadline`, then undefined), since a lookup sent meanwhile is lost.
   */
  private async connected(deadline: number): Promise<NatsLink | undefined> {
    const link = this.ctx.current();
    if (!link) return this.ctx.link();
    return (await this.ctx.whenConnected(deadline)) ? (this.ctx.current() ?? link) : undefined;
  }

  /**
   * Publishes to a stream subject and waits for the PubAck, within `publishTimeoutMs` in all. A
   * publish written as the connection dropped is lost on the wire, so an unconfirmed one is sent
   * again (after the reconnection) under the same message id: the stream stores it once. A subject
   * no stream takes ("no responders") is sent again after a pause: on a cluster that is a stream
   * whose leader is being elected (seconds), after a restart JetStream not back yet, or a stream
   * deleted under us, which {@link checkStreams} creates again meanwhile. Refused again after a
   * check that found the streams, it is refused. Every failure names what happened.
   */
  async publish(
    subject: string,
    body: Uint8Array,
    headers: WireHeaders,
    msgID: string = freshMsgId(),
    deadline: number = Date.now() + this.ctx.options.publishTimeoutMs,
  ): Promise<void> {
    const { options } = this.ctx;
    // Once: every attempt sends these same headers.
    headers.add('Nats-Msg-Id', msgID);
    const perAttempt = Math.max(1_000, Math.floor(options.publishTimeoutMs / 4));
    /** When no stream took it first, and the pause before it goes again. */
    let noStreamSince: number | undefined;
    let noStreamPauseMs = NO_STREAM_PAUSE_MS;
    for (;;) {
      const link = this.ctx.current() ?? (await this.ctx.link());
      const startedAt = Date.now();
      const timeout = Math.max(100, Math.min(perAttempt, deadline - startedAt));
      try {
        await this.pubAcks.publish(link.nc, subject, body, headers, timeout);
        return;
      } catch (error) {
        const text = describe(error);
        let retriable = error instanceof PubAckError ? error.retriable : true;
        let pauseMs = Date.now() - startedAt < 100 ? 100 : 0;
        if (error instanceof PubAckError && error.noStream) {
          noStreamSince ??= startedAt;
          // Refused for good only when a check begun since found the streams (with a leader: a
          // leaderless stream's info is answered by nobody) and it is refused again.
          retriable = !(this.streamsFoundAt >= noStreamSince);
          if (retriable) this.checkStreams(link);
          pauseMs = noStreamPauseMs;
          noStreamPauseMs = Math.min(2 * noStreamPauseMs, MAX_NO_STREAM_PAUSE_MS);
        }
        if (retriable && Date.now() < deadline && !this.ctx.closing()) {
          // Failed at once (no connection yet, no stream): pause instead of spinning.
          pauseMs = Math.min(pauseMs, deadline - Date.now());
          if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
          continue;
        }
        if (retriable) {
          throw new PublishTimeoutError(
            `NATS did not confirm the publish to '${subject}' within ${options.publishTimeoutMs} ms ` +
              `(${text}); it may or may not be stored. Publish again with the same messageId.`,
            { cause: error },
          );
        }
        throw new PublishFailedError(`NATS refused the publish to '${subject}': ${text}`, {
          cause: error,
        });
      }
    }
  }

  /**
   * Checks the streams, creating those deleted under us, unless a check is under way: in the
   * background, for the publishes that met no stream (they go again meanwhile). On a cluster
   * electing a stream's leader the check is answered by nobody and ends with the API's timeout.
   */
  private checkStreams(link: NatsLink): void {
    if (this.checking) return;
    const startedAt = Date.now();
    this.checking = ensureStreams(link.jsm, this.ctx.options).then(
      () => {
        this.streamsFoundAt = Math.max(this.streamsFoundAt, startedAt);
        this.checking = undefined;
      },
      () => {
        this.checking = undefined;
      },
    );
  }

  /** The topic or queue of `message`; throws when it has neither, both, or a bad topic. */
  targetOf(message: OutgoingMessage): string {
    const target = messageTarget('NatsBackend', message);
    if (target instanceof Error) throw target;
    if (message.queue === undefined) assertSubjectName(target, 'topic');
    return target;
  }
}

/** `work`, or a {@link RouteLookupError} if it has not settled by `deadline` (it is left to end). */
function beforeDeadline<T>(work: Promise<T>, deadline: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new RouteLookupError('no answer before the publish timed out')),
      Math.max(0, deadline - Date.now()),
    );
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
