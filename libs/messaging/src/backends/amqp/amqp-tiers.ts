import type { Logger } from '@nestjs/common';
import type { Channel, ChannelModel } from 'amqplib';
import type { BackendEventHub } from '../../backend/backend-events';
import { PublishFailedError, UnroutableError } from '../../errors/messaging.errors';
import type { ResolvedAmqpOptions } from './amqp-backend.options';
import { sanitizeError, type AmqpConnectionManager } from './amqp-connection';
import { AmqpPublisher } from './amqp-publisher';
import type { PublishCommand } from './amqp-publish-command';
import { assertTier, pickTier, tierName, type TierKind } from './amqp-topology';

/**
 * The delay tiers of one backend (see `amqp-topology.ts`): the only place that sends a message
 * through a tier, for retries (`retry`, back to one queue) and delayed publishes (`delay`, to a
 * topic). A tier is declared the first time it is used on a connection, and again after every
 * reconnection. Declarations and publishes use channels of their own: a tier deleted behind the
 * library's back (its exchange: 404; its queue: the publish comes back unroutable) fails only the
 * publish that met it, never the application's publishes on the main channel; that publish then
 * declares the tier again and goes once more.
 */
export class AmqpTiers {
  private readonly declared = new Map<string, Promise<void>>();
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

  /** Opens the tiers' confirm channel on a new connection (part of the connection's setup). */
  open(conn: ChannelModel): Promise<void> {
    return this.publisher.open(conn);
  }

  /**
   * Publishes `command` through the tier that holds it at least `delayMs`: to the tier's exchange
   * with the final target as routing key, which the tier's queue dead-letters it to on expiry.
   */
  async publish(kind: TierKind, delayMs: number, command: PublishCommand): Promise<void> {
    const tier = pickTier(delayMs);
    // The tier always routes; whether the final target exists is only known when the delay expires.
    const through: PublishCommand = {
      ...command,
      exchange: tierName(this.options.exchange, kind, tier),
      properties: { ...command.properties, mandatory: true },
    };
    await this.ensure(kind, tier);
    try {
      await this.publisher.publish(through);
    } catch (error) {
      if (!(error instanceof UnroutableError || error instanceof PublishFailedError)) throw error;
      // Deleted behind our back (or its channel lost): declare it again, and try once more.
      this.declared.delete(`${kind}:${tier}`);
      await this.ensure(kind, tier);
      await this.publisher.publish(through);
    }
  }

  /** The connection changed: tiers are declared again, on a new channel, when next used. */
  reset(): void {
    this.declared.clear();
    this.channel = undefined;
  }

  /** The connection was lost: its channels are gone. */
  lost(): void {
    this.reset();
    this.publisher.lost();
  }

  /** Fails what is pending and closes the tiers' channels (the backend is closing). */
  async close(): Promise<void> {
    const channel = this.channel;
    this.reset();
    await this.publisher.close();
    if (channel) await channel.then((ch) => ch.close()).catch(() => undefined);
  }

  private ensure(kind: TierKind, tierMs: number): Promise<void> {
    if (!this.options.assertTopology) return Promise.resolve();
    const key = `${kind}:${tierMs}`;
    let declared = this.declared.get(key);
    if (!declared) {
      declared = this.declare(kind, tierMs);
      this.declared.set(key, declared);
      declared.catch(() => this.declared.delete(key));
    }
    return declared;
  }

  private async declare(kind: TierKind, tierMs: number): Promise<void> {
    try {
      await assertTier(await this.openChannel(), this.options, kind, tierMs);
    } catch (error) {
      throw sanitizeError(error, `declaring ${tierName(this.options.exchange, kind, tierMs)}`);
    }
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
