import { Logger } from '@nestjs/common';
import type { BrokerBackend } from '../backend/broker-backend.interface';
import type { MessageCodec } from '../codec/message-codec';
import type { ResolvedMessagingOptions } from '../options/messaging-options';
import { DeadLetterService } from './dead-letter.service';

/** What `DeadLetterService.purge()` logs: a warning when letters are deleted, no more when none. */
describe('DeadLetterService.purge', () => {
  const options = { service: 'payments' } as ResolvedMessagingOptions;
  const lines: Array<[level: string, text: string]> = [];

  beforeEach(() => {
    lines.length = 0;
    for (const level of ['warn', 'log', 'debug'] as const) {
      jest
        .spyOn(Logger.prototype, level)
        .mockImplementation((...args: unknown[]) => void lines.push([level, String(args[0])]));
    }
  });

  afterEach(() => jest.restoreAllMocks());

  /** A service over a backend whose purge deletes `count` letters. */
  function serviceDeleting(count: number): DeadLetterService {
    const backend = { deadLetters: { purge: async () => count } } as unknown as BrokerBackend;
    return new DeadLetterService(options, backend, {} as MessageCodec);
  }

  it.each([
    [0, [['log', 'No dead letters of payments to purge']]],
    [1, [['warn', 'Purged 1 dead letter(s) of payments']]],
    [3, [['warn', 'Purged 3 dead letter(s) of payments']]],
  ])('a purge of %i logs %j', async (count, logged) => {
    expect(await serviceDeleting(count).purge()).toBe(count);
    expect(lines).toEqual(logged);
  });
});
