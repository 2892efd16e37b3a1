import { ValidationPipe } from '@nestjs/common';
import { MessagingConfigError } from '../errors/messaging.errors';
import { type BatchOptions, MAX_BATCH_SIZE, MAX_BATCH_WAIT_MS } from './batch-options';
import { Consume, type ConsumeOptions } from './consume.decorator';

/** Declares a class whose one method takes `@Consume('a', options)`. */
const declare = (options: ConsumeOptions) => () => {
  class Orders {
    @Consume('a', options)
    save(): void {}
  }
  return Orders;
};
const batch = (value: unknown) => declare({ batch: value as BatchOptions });

describe('@Consume batch options', () => {
  it.each<[string, () => unknown, RegExp]>([
    ['no maxWaitMs', batch({ size: 10 }), /batch needs both size and maxWaitMs/],
    ['no size', batch({ maxWaitMs: 10 }), /batch needs both size and maxWaitMs/],
    [
      'size 0',
      batch({ size: 0, maxWaitMs: 10 }),
      /batch.size must be a whole number from 1 to 10000, got 0/,
    ],
    ['a fractional size', batch({ size: 2.5, maxWaitMs: 10 }), /batch.size must be a whole number/],
    [
      'a size over the max',
      batch({ size: MAX_BATCH_SIZE + 1, maxWaitMs: 10 }),
      /batch.size must be/,
    ],
    [
      'a negative maxWaitMs',
      batch({ size: 2, maxWaitMs: -1 }),
      /batch.maxWaitMs must be a whole number from 0 to 60000/,
    ],
    [
      'a maxWaitMs over the max',
      batch({ size: 2, maxWaitMs: MAX_BATCH_WAIT_MS + 1 }),
      /batch.maxWaitMs/,
    ],
    [
      'a misspelt key',
      batch({ size: 2, maxWait: 5 }),
      /batch has no option 'maxWait'; did you mean 'maxWaitMs'\?/,
    ],
    ['a number', batch(100), /batch must be an object/],
    [
      'an itemType that is no class',
      batch({ size: 2, maxWaitMs: 5, itemType: 'Order' }),
      /itemType must be a class/,
    ],
    [
      'itemPipes that are no pipes',
      batch({ size: 2, maxWaitMs: 5, itemPipes: [{}] }),
      /itemPipes must be an array of pipe instances/,
    ],
    [
      'idempotent with batch',
      declare({ idempotent: true, batch: { size: 2, maxWaitMs: 5 } }),
      /drop batch, or idempotent/,
    ],
    [
      'ordered with batch',
      declare({ ordered: true, batch: { size: 2, maxWaitMs: 5 } }),
      /ordered and batch cannot be combined.*drop batch, or ordered/,
    ],
    [
      'a circuit breaker with batch',
      declare({ circuitBreaker: { failures: 3 }, batch: { size: 2, maxWaitMs: 5 } }),
      /circuitBreaker and batch cannot be combined/,
    ],
  ])('refuses %s where it is written', (_case, apply, message) => {
    expect(apply).toThrow(MessagingConfigError);
    expect(apply).toThrow(message);
  });

  it('accepts a batch with its bounds and optional item type and pipes', () => {
    expect(batch({ size: 1, maxWaitMs: 0 })).not.toThrow();
    expect(batch({ size: MAX_BATCH_SIZE, maxWaitMs: MAX_BATCH_WAIT_MS })).not.toThrow();
    class Item {}
    expect(
      batch({ size: 5, maxWaitMs: 5, itemType: Item, itemPipes: [new ValidationPipe()] }),
    ).not.toThrow();
  });
});
