/**
 * Publishing on Redis: one `XADD` per message to a target the routing cache knows (`RedisRoutes`:
 * `NOMKSTREAM`, so a stream that is gone is noticed in the same publish), the routing script
 * (`PUBLISH_SCRIPT`) otherwise, the delay script for a delayed message. Errors name the target and
 * say whether the message may have been added.
 */
import { messageTarget } from '../../backend/request-guards';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { OutgoingMessage } from '../../backend/broker-backend.interface';
import {
  PublishFailedError,
  PublishTimeoutError,
  UnroutableError,
} from '../../errors/messaging.errors';
import type { ResolvedRedisOptions } from './redis-backend.options';
import { coalesceWrites } from './redis-connection';
import { publishFields, pushPublishFields } from './redis-messages';
import type { RedisRoutes } from './redis-routes';
import { DELAY_SCRIPT, evalScript, PUBLISH_SCRIPT, runScript } from './redis-scripts';
import type { RedisKeys } from './redis-topology';

type XAddArgs = Array<string | Buffer | number>;

export class RedisPublisher {
  constructor(
    private readonly keys: RedisKeys,
    private readonly options: ResolvedRedisOptions,
    private readonly routes: RedisRoutes,
  ) {}

  /**
   * Adds `message` to its topic's or queue's stream (or holds it for its delay); rejects with
   * `UnroutableError` when `mandatory` and no queue receives it, with `PublishTimeoutError` or
   * `PublishFailedError` when Redis did not take it. `replyTo` makes it a durable request.
   */
  send(
    command: Redis,
    message: OutgoingMessage,
    mandatory: boolean,
    replyTo?: string,
  ): Promise<void> {
    const { topic } = message;
    const target = messageTarget('RedisStreamsBackend', message);
    if (target instanceof Error) return Promise.reject(target);
    if (message.delayMs !== undefined && message.delayMs > 0)
      return this.delayed(command, message, mandatory);
    coalesceWrites(command);
    const now = Date.now();
    if (topic !== undefined) {
      const known = this.routes.knownTopic(topic, now);
      if (known === undefined) return this.route(command, 't', topic, message, mandatory, replyTo);
      const args = pushPublishFields<XAddArgs>(
        [known.stream, 'NOMKSTREAM', 'MAXLEN', '~', this.options.maxLength, '*'],
        message,
        replyTo,
      );
      return (command.call('XADD', args) as Promise<string | null>).then(
        (id) => {
          if (id !== null) return;
          // The stream is gone (deleted, or Redis restarted empty): the script decides.
          this.routes.forgetTopic(topic);
          return this.route(command, 't', topic, message, mandatory, replyTo);
        },
        this.failed(topic, 't'),
      );
    }
    const name = target;
    // Never trimmed (no MAXLEN): what a queue stream holds is unhandled.
    if (!mandatory) {
      // Kept for its future consumer, whether or not the queue has a group yet.
      const args = pushPublishFields<XAddArgs>([this.keys.queue(name), '*'], message, replyTo);
      return command.call('XADD', args).then(nothing, this.failed(name, 'q'));
    }
    const known = this.routes.knownQueue(name, now);
    if (known === undefined) return this.route(command, 'q', name, message, mandatory, replyTo);
    const args = pushPublishFields<XAddArgs>([known.stream, 'NOMKSTREAM', '*'], message, replyTo);
    return (command.call('XADD', args) as Promise<string | null>).then(
      (id) => {
        if (id !== null) return;
        this.routes.forgetQueue(name);
        return this.route(command, 'q', name, message, mandatory, replyTo);
      },
      this.failed(name, 'q'),
    );
  }

  /**
   * The routing script: creates what a new topic needs, adds the message if a group receives it.
   * Sent as `EVAL`, never `EVALSHA`: an `EVALSHA` that met `NOSCRIPT` would be sent again behind the
   * fast `XADD`s of the messages published after it (a recheck runs while the others keep the fast
   * path), and its message would land after theirs.
   */
  private route(
    command: Redis,
    kind: 't' | 'q',
    name: string,
    message: OutgoingMessage,
    mandatory: boolean,
    replyTo: string | undefined,
  ): Promise<void> {
    return evalScript(
      command,
      PUBLISH_SCRIPT,
      1,
      this.keys.slotKey,
      this.keys.prefix,
      kind,
      name,
      this.options.maxLength,
      mandatory ? '1' : '0',
      ...publishFields(message, replyTo),
    ).then(
      (added) => {
        if (Number(added) === 0) {
          this.forget(kind, name);
          if (mandatory) throw new UnroutableError(kind === 't' ? name : `queue ${name}`);
          return;
        }
        // Only what reached a group is remembered (a queue message sent without `mandatory` is
        // added whether or not its queue has one).
        const now = Date.now();
        if (kind === 't') this.routes.confirmTopic(name, this.keys.topic(name), now);
        else if (mandatory) this.routes.confirmQueue(name, this.keys.queue(name), now);
      },
      (error: Error) => {
        this.forget(kind, name);
        return this.failed(name, kind)(error);
      },
    );
  }

  private forget(kind: 't' | 'q', name: string): void {
    if (kind === 't') this.routes.forgetTopic(name);
    else this.routes.forgetQueue(name);
  }

  private delayed(command: Redis, message: OutgoingMessage, mandatory: boolean): Promise<void> {
    const kind = message.topic !== undefined ? 't' : 'q';
    const name = (message.topic ?? message.queue) as string;
    return runScript(
      command,
      DELAY_SCRIPT,
      1,
      this.keys.slotKey,
      this.keys.prefix,
      kind,
      name,
      mandatory ? '1' : '0',
      Math.ceil(message.delayMs as number),
      randomUUID(),
      ...publishFields(message),
    ).then(
      (held) => {
        if (Number(held) === 0 && mandatory)
          throw new UnroutableError(kind === 't' ? name : `queue ${name}`);
      },
      this.failed(name, kind),
    );
  }

  /** Turns what Redis (or ioredis) rejected a publish with into an error that says what happened. */
  private failed(name: string, kind: 't' | 'q'): (error: Error) => never {
    return (error) => {
      if (error instanceof UnroutableError) throw error;
      throw publishFailure(
        error,
        kind === 't' ? `topic '${name}'` : `queue '${name}'`,
        this.options.commandTimeoutMs,
      );
    };
  }
}

/**
 * The error of a message to `target` that Redis did not take: `PublishTimeoutError` when it did not
 * answer within `commandTimeoutMs` (the message may have been added), else `PublishFailedError`.
 */
export function publishFailure(error: Error, target: string, commandTimeoutMs: number): Error {
  if (error.message.includes('Command timed out')) {
    return new PublishTimeoutError(
      `RedisStreamsBackend: Redis did not confirm the message to ${target} within ${commandTimeoutMs} ms ` +
        '(commandTimeoutMs; Redis unreachable or overloaded). It may or may not have been added: publish it again with the same messageId.',
      { cause: error },
    );
  }
  return new PublishFailedError(
    `RedisStreamsBackend: Redis refused the message to ${target}: ${error.message}`,
    { cause: error },
  );
}

function nothing(): void {}
