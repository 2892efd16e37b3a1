import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { MessagingConfigError } from '../errors/messaging.errors';
import type {
  BrokerBackend,
  DeadLetter,
  DeadLetterPage,
  DeadLetterPurge,
  DeadLetterReplay,
} from '../backend/broker-backend.interface';
import { MessageCodec } from '../codec/message-codec';
import { readEvent } from '../codec/cloud-events';
import { connectionToken, MESSAGING_BACKEND, MESSAGING_OPTIONS } from '../messaging.constants';
import type { ResolvedMessagingOptions } from '../options/messaging-options';

/** A dead letter with its body decoded the way its handler would have seen it. */
export interface DeadLetterEntry extends DeadLetter {
  /** The decoded body, or the body as text when it cannot be decoded (a malformed message). */
  readonly payload: unknown;
}

/**
 * This service's dead-letter queue: list what failed for good, replay it once the cause is fixed.
 *
 * @example
 * constructor(private readonly deadLetters: DeadLetterService) {}
 * const failed = await this.deadLetters.list();
 * await this.deadLetters.replay(failed[0].id);
 */
@Injectable()
export class DeadLetterService {
  private readonly logger = new Logger('Messaging');

  constructor(
    @Inject(MESSAGING_OPTIONS) private readonly options: ResolvedMessagingOptions,
    @Inject(MESSAGING_BACKEND) private readonly backend: BrokerBackend,
    private readonly codec: MessageCodec,
    @Optional() private readonly modules?: ModuleRef,
  ) {}

  /**
   * The dead letters of the same service on another connection (`forRoot({ name })`): its broker,
   * its service name.
   *
   * @example
   * const failed = await this.deadLetters.forConnection('events').list();
   */
  forConnection(name: string): DeadLetterService {
    let connection: {
      options: ResolvedMessagingOptions;
      backend: BrokerBackend;
      codec: MessageCodec;
    };
    try {
      connection = this.modules!.get(connectionToken(name), { strict: false });
    } catch {
      throw new MessagingConfigError(
        `DeadLetterService.forConnection('${name}'): no connection '${name}'; import MessagingModule.forRoot({ name: '${name}', backend, service })`,
      );
    }
    return new DeadLetterService(
      connection.options,
      connection.backend,
      connection.codec,
      this.modules,
    );
  }

  /**
   * The service's dead letters, oldest first; with `page`, `limit` of them after `offset` (only the
   * page is held in memory, so page through a large dead-letter queue).
   */
  async list(page?: DeadLetterPage): Promise<DeadLetterEntry[]> {
    const letters = await this.backend.deadLetters.list(this.options.service, page);
    return letters.map((letter) => ({ ...letter, payload: this.decode(letter) }));
  }

  /** Sends one dead letter back to its handler's queue as a first attempt; false if there is none with that id. */
  async replay(id: string): Promise<boolean> {
    const replayed = await this.backend.deadLetters.replay(this.options.service, id);
    if (replayed) this.logger.log(`Replayed dead letter ${id} of ${this.options.service}`);
    return replayed;
  }

  /** Replays every dead letter; resolves with how many. */
  async replayAll(): Promise<number> {
    const count = await this.backend.deadLetters.replayAll(this.options.service);
    this.logger.log(`Replayed ${count} dead letter(s) of ${this.options.service}`);
    return count;
  }

  /**
   * Deletes every dead letter; resolves with how many. Deleting some is logged as a warning (they are
   * gone for good); finding none is not worth one.
   */
  async purge(): Promise<number> {
    const { service } = this.options;
    const count = await this.backend.deadLetters.purge(service);
    if (count > 0) this.logger.warn(`Purged ${count} dead letter(s) of ${service}`);
    else this.logger.log(`No dead letters of ${service} to purge`);
    return count;
  }

  /**
   * Replays the dead letters `select` picks (one error group, say); resolves with the ids replayed
   * and, for each picked one that could not be, why (it stays).
   */
  async replayWhere(select: (letter: DeadLetter) => boolean): Promise<DeadLetterReplay> {
    const { service } = this.options;
    const result = await this.backend.deadLetters.replayWhere(service, select);
    this.logger.log(`Replayed ${result.replayed.length} dead letter(s) of ${service}`);
    return result;
  }

  /**
   * Deletes the dead letters `select` picks and leaves the others; resolves with the ids deleted
   * (logged as a warning when there are some: they are gone for good).
   */
  async purgeWhere(select: (letter: DeadLetter) => boolean): Promise<DeadLetterPurge> {
    const { service } = this.options;
    const result = await this.backend.deadLetters.purgeWhere(service, select);
    if (result.purged.length > 0)
      this.logger.warn(`Purged ${result.purged.length} dead letter(s) of ${service}`);
    return result;
  }

  /** What the handler got: the body decoded, a CloudEvent's data. */
  private decode(letter: DeadLetter): unknown {
    try {
      const event = readEvent(letter, this.codec);
      return event ? event.payload : this.codec.decode(letter);
    } catch {
      return letter.body.toString('utf8');
    }
  }
}
