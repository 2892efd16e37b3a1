/**
 * Publishing to the streams of {@link NatsBackend}: a message to its topic or queue subject (or
 * through the delayed stream), the unroutable check of a mandatory publish, and the PubAck wait of
 * every publish (retry copies, dead letters and releases of delayed messages included), sent again
 * under the same message id when the connection dropped it.
 */
import { randomBytes } from 'node:crypto';
import type { OutgoingMessage } from '../../backend/broker-backend.interface';
import {
  MessagingConfigError,
  PublishFailedError,
  PublishTimeoutError,
  UnroutableError,
} from '../../errors/messaging.errors';
import type { ResolvedNatsOptions } from './nats-backend.options';
import { describe, type NatsLink } from './nats-connection';
import { encodeHeaders, outgoingProperties } from './nats-messages';
import { NatsPubAcks, PubAckError } from './nats-pubacks';
import type { NatsRoutes } from './nats-routes';
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
  /** The link when connected. */
  current(): NatsLink | undefined;
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

export class NatsPublisher {
  private readonly pubAcks: NatsPubAcks;

  constructor(private readonly ctx: NatsPublisherContext) {
    this.pubAcks = new NatsPubAcks(() => ctx.inbox());
  }

  /** Fails the publishes still waiting for their PubAck (the connection is closed). */
  close(): void {
    this.pubAcks.close();
  }

  /** Publishes `message` to its topic or queue subject, or through the delayed stream. */
  async send(message: OutgoingMessage, mandatory: boolean, replyTo?: string): Promise<void> {
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
      await this.assertRoutable(this.ctx.current() ?? (await this.ctx.link()), message);
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
    );
  }

  /** Rejects with `UnroutableError` when no route of any process takes `message`. */
  async assertRoutable(link: NatsLink, message: OutgoingMessage): Promise<void> {
    const { routes } = this.ctx;
    const routed =
      message.queue !== undefined
        ? await routes.hasQueue(link.jsm, message.queue)
        : await routes.hasTopic(link.jsm, message.topic as string);
    if (!routed) throw new UnroutableError(message.topic ?? `queue ${message.queue}`);
  }

  /**
   * Publishes to a stream subject and waits for the PubAck, within `publishTimeoutMs` in all. A
   * publish written as the connection dropped is lost on the wire, so an unconfirmed one is sent
   * again (after the reconnection) under the same message id: the stream stores it once. A missing
   * stream (deleted under us) is created again. Every failure names what happened.
   */
  async publish(
    subject: string,
    body: Uint8Array,
    headers: WireHeaders,
    msgID: string = freshMsgId(),
  ): Promise<void> {
    const { options } = this.ctx;
    // Once: every attempt sends these same headers.
    headers.add('Nats-Msg-Id', msgID);
    const deadline = Date.now() + options.publishTimeoutMs;
    const perAttempt = Math.max(1_000, Math.floor(options.publishTimeoutMs / 4));
    let recreated = false;
    for (;;) {
      const link = this.ctx.current() ?? (await this.ctx.link());
      const startedAt = Date.now();
      const timeout = Math.max(100, Math.min(perAttempt, deadline - startedAt));
      try {
        await this.pubAcks.publish(link.nc, subject, body, headers, timeout);
        return;
      } catch (error) {
        const text = describe(error);
        if (!recreated && error instanceof PubAckError && error.noStream) {
          recreated = true;
          await ensureStreams(link.jsm, options).catch(() => undefined);
          continue;
        }
        const retriable = error instanceof PubAckError ? error.retriable : true;
        if (retriable && Date.now() < deadline && !this.ctx.closing()) {
          // Failed at once (no connection yet): pause instead of spinning until the deadline.
          if (Date.now() - startedAt < 100) await new Promise((r) => setTimeout(r, 100));
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

  /** The topic or queue of `message`; throws when it has neither, both, or a bad topic. */
  targetOf(message: OutgoingMessage): string {
    const target = message.queue ?? message.topic;
    if (
      typeof target !== 'string' ||
      target.length === 0 ||
      (message.queue !== undefined && message.topic !== undefined)
    ) {
      throw new MessagingConfigError(
        'NatsBackend: a message needs exactly one of `topic` and `queue`.',
      );
    }
    if (message.queue === undefined) assertSubjectName(target, 'topic');
    return target;
  }
}
