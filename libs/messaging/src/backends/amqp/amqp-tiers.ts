import type { Channel } from 'amqplib';
import type { BackendEventHub } from '../../backend/backend-events';
import type { ResolvedAmqpOptions } from './amqp-backend.options';
import { sanitizeError, type AmqpConnectionManager } from './amqp-connection';
import type { PublishCommand } from './amqp-publisher';
import { assertTier, pickTier, tierName, type TierKind } from './amqp-topology';

/**
 * The delay tiers of one backend (see `amqp-topology.ts`): the only place that sends a message
 * through a tier, for retries (`retry`, back to one queue) and delayed publishes (`delay`, to a
 * topic). A tier is declared the first time it is used on a connection, on a channel of its own (a
 * 406 on a tier must not close the publisher's channel), and again after every reconnection.
 */
export class AmqpTiers {
  private readonly declared = new Map<string, Promise<void>>();
  private channel?: Promise<Channel>;

  constructor(
    private readonly connection: AmqpConnectionManager,
    private readonly options: ResolvedAmqpOptions,
    private readonly hub: BackendEventHub,
  ) {}

  /**
   * `command` rerouted through the tier that holds it at least `delayMs`: published to the tier's
   * exchange with the final target as routing key, which the tier's queue dead-letters it to on expiry.
   */
  async through(kind: TierKind, delayMs: number, command: PublishCommand): Promise<PublishCommand> {
    const tier = pickTier(delayMs);
    await this.ensure(kind, tier);
    // The tier always routes; whether the final target exists is only known when the delay expires.
    return {
      ...command,
      exchange: tierName(this.options.exchange, kind, tier),
      properties: { ...command.properties, mandatory: true },
    };
  }

  /** The connection changed: tiers are declared again, on a new channel, when next used. */
  reset(): void {
    this.declared.clear();
    this.channel = undefined;
  }

  /** Closes the tiers' channel (the backend is closing). */
  async close(): Promise<void> {
    const channel = this.channel;
    this.reset();
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
