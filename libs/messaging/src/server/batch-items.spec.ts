import { type ArgumentMetadata, type PipeTransform, UsePipes } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import type { ConsumeDefinition } from '../decorators/consume.decorator';
import { Consume } from '../decorators/consume.decorator';
import { CONSUME_METADATA } from '../messaging.constants';
import { PATTERN_EXTRAS_METADATA } from '@nestjs/microservices/constants';
import { BatchItemPipes } from './batch-items';

/** A pipe that appends its name to a string item, and records the metadata it was given. */
class Tag implements PipeTransform {
  static seen: ArgumentMetadata[] = [];
  constructor(private readonly name = 'class') {}
  transform(value: string, metadata: ArgumentMetadata): string {
    Tag.seen.push(metadata);
    return `${value}>${this.name}`;
  }
}

class Item {}

@UsePipes(new Tag('on-class'))
class Stock {
  @Consume('stock.counted', {
    batch: { size: 10, maxWaitMs: 5, itemType: Item, itemPipes: [new Tag('item-pipes')] },
  })
  @UsePipes(new Tag('on-method'))
  count(@Payload(new Tag('on-param'), Tag) _items: string[]): void {}
}

class Bare {
  @Consume('stock.plain', { batch: { size: 10, maxWaitMs: 5 } })
  plain(@Payload() _items: string[]): void {}
}

function definitionOf(method: object): ConsumeDefinition {
  const extras = Reflect.getMetadata(PATTERN_EXTRAS_METADATA, method) as Record<
    string,
    ConsumeDefinition
  >;
  return extras[CONSUME_METADATA];
}

describe('BatchItemPipes', () => {
  it("runs each item through the handler's pipes in Nest's order, with batch.itemType as its type", async () => {
    const definition = definitionOf(Stock.prototype.count);
    const pipes = BatchItemPipes.of(definition, definition.options.batch!);
    Tag.seen = [];
    // itemPipes, then the class's, the method's, and the @Payload() parameter's (a class made with new).
    expect(await pipes?.apply('item')).toBe('item>item-pipes>on-class>on-method>on-param>class');
    expect(Tag.seen.every((m) => m.metatype === Item)).toBe(true);
  });

  it('is undefined for a handler without pipes: its items cost nothing more', () => {
    const definition = definitionOf(Bare.prototype.plain);
    expect(BatchItemPipes.of(definition, definition.options.batch!)).toBeUndefined();
  });

  it('rejects with the first pipe that throws', async () => {
    const refuse: PipeTransform = {
      transform: () => {
        throw new Error('bad item');
      },
    };
    const definition = definitionOf(Bare.prototype.plain);
    const pipes = BatchItemPipes.of(definition, { size: 1, maxWaitMs: 0, itemPipes: [refuse] });
    await expect(pipes?.apply('x')).rejects.toThrow('bad item');
  });
});
