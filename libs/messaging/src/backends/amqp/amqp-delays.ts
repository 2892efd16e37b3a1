import type { Logger } from '@nestjs/common';
import type { Channel, ChannelModel } from 'amqplib';
import type { BackendEventHub } from '../../backend/backend-events';
import { PublishFailedError, UnroutableError } from '../../errors/messaging.errors';
import type { ResolvedAmqpOptions } from './amqp-backend.options';
import { sanitizeError, type AmqpConnectionManager } from './amqp-connection';
import {
  assertDelayLevels,
  bindDelayedQueue,
  delayEntryExchange,
  delayRoutingKey,
} from './amqp-delay-levels';
import { AmqpPublisher } from './amqp-publisher';
import type { PublishCommand } from './amqp-publish-command';

/**
 * The delay levels of one backend (see `amqp-delay-levels.ts`): the only place that sends a message
 * through them, for retries, delayed sends to a queue and the parking of delayed publishes (see
 * `amqp-parking.ts`), always to one queue. The levels are declared the first time they are used on a
 * connection, and so is the binding of each queue they deliver to (a queue declared before the
 * levels existed, or someone else's, is bound then); again after every reconnection. Declarations and
 * publishes use channels of their own: a level deleted behind the library's back (its exchange: 404;
 * its queue: the publish comes back unroutable) fails only the publish that met it, never the
 * application's publishes on the main channel; that publish then declares the levels again and goes
 * once more.
 */
export class AmqpDelays {
  private levels?: Promise<void>;
  private readonly bound = new Map<string, Promise<void>>();
  private channel?: Promise<Channel>;
  private readonly publisher: AmqpPublisher;

  constructor(
    private readonly connection: AmqpConnectionManager,
    private readonly options: ResolvedAmqpOptions,
    private readonly hub: BackendEventHub,
    logger: Logger,
  ) {
    this.publisher = new AmqpPublisher(connection, options, hub, logger, NO_HOOKS);
  }

  /** Opens the delays' confirm channel on a new connection (part of the connection's setup). */
  open(conn: ChannelModel): Promise<void> {
    return this.publisher.open(conn);
  }

  /**
   * Publishes `command` (addressed to the queue `command.target`) through the levels, which hold it
   * `delayMs` (see `appliedDelayMs`) and then deliver it to that queue.
   */
  async publish(delayMs: number, command: PublishCommand): Promise<void> {
    const queue = command.target;
    const through: PublishCommand = {
      ...command,
      exchange: delayEntryExchange(this.options.exchange),
      routingKey: delayRoutingKey(delayMs, queue),
      // A level always routes; a missing one comes back.
      properties: { ...command.properties, mandatory: true },
    };
    await this.ensure(queue);
    try {
      await this.publisher.publish(through);
    } catch (error) {
      if (!(error instanceof UnroutableError || error instanceof PublishFailedError)) throw error;
      // Deleted behind our back (or its channel lost): declare it again, and try once more.
      this.reset();
      await this.ensure(queue);
      await this.publisher.publish(through);
    }
  }

  /** The connection changed: levels and bindings are declared again, on a new channel, when next used. */
  reset(): void {
    this.levels = undefined;
    this.bound.clear();
    this.channel = undefined;
  }

  /** The connection was lost: its channels are gone. */
  lost(): void {
    this.reset();
    this.publisher.lost();
  }

  /** Fails what is pending and closes the delays' channels (the backend is closing). */
  async close(): Promise<void> {
    const channel = this.channel;
    this.reset();
    await this.publisher.close();
    if (channel) await channel.then((ch) => ch.close()).catch(() => undefined);
  }

  private async ensure(queue: string): Promise<void> {
    if (!this.options.assertTopology) return;
    this.levels ??= this.declare('the delay levels', (ch) => assertDelayLevels(ch, this.options));
    await this.levels;
    let bound = this.bound.get(queue);
    if (!bound) {
      bound = this.declare(`the delay binding of queue '${queue}'`, (ch) =>
        bindDelayedQueue(ch, this.options, queue),
      );
      this.bound.set(queue, bound);
    }
    await bound;
  }

  /** Runs a declaration; one that failed is forgotten, to be tried again by the next publish. */
  private declare(what: string, run: (ch: Channel) => Promise<void>): Promise<void> {
    const declared = this.openChannel()
      .then(run)
      .catch((error: unknown) => {
        throw sanitizeError(error, `declaring ${what}`);
      });
    declared.catch(() => {
      if (this.levels === declared) this.levels = undefined;
      for (const [queue, promise] of this.bound) if (promise === declared) this.bound.delete(queue);
    });
    return declared;
  }

  private async openChannel(): Promise<Channel> {
    if (!this.channel) {
      const opened = this.connection
        .waitForConnection(this.options.publishTimeoutMs)
        .then((conn) => conn.createChannel())
        .then((ch) => {
          ch.on('error', (error: unknown) =>
            this.hub.emitError(sanitizeError(error, 'AMQP topology channel')),
          );
          ch.on('close', () => {
            if (this.channel === opened) this.channel = undefined;
          });
          return ch;
        });
      opened.catch(() => {
        if (this.channel === opened) this.channel = undefined;
      });
      this.channel = opened;
    }
    return this.channel;
  }
}

const NO_HOOKS = { opened: async (): Promise<void> => undefined, closed: (): void => undefined };
