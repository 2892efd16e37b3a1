import { MessagingConfigError } from '../errors/messaging.errors';
import { Consume, type ConsumeDefinitionInput, type ConsumeOptions } from './consume.decorator';
import { Producer } from './producer.decorator';

/** Applies `@Consume(...args)` to a fresh method, as writing it on a class does. */
const consume = (topic: string | ConsumeDefinitionInput, options?: ConsumeOptions) => () => {
  class Handler {
    handle(): void {}
  }
  const descriptor = Object.getOwnPropertyDescriptor(Handler.prototype, 'handle');
  const decorator = typeof topic === 'string' ? Consume(topic, options) : Consume(topic);
  decorator(Handler.prototype, 'handle', descriptor as PropertyDescriptor);
};

describe('@Consume and @Producer check their options where they are written', () => {
  it.each<[string, () => unknown, RegExp]>([
    ['no topic nor queue', consume({}), /give exactly one of a topic/],
    ['a topic and a queue', consume({ topic: 'a', queue: 'q' }), /give exactly one of a topic/],
    ['an empty word', consume('order..created'), /has an empty word/],
    [
      'a topic twice',
      consume('a', { topic: 'b' } as never),
      /the topic is the first argument; drop 'topic' from the options/,
    ],
    ['a bad concurrency', consume('a', { concurrency: 0 }), /concurrency must be a whole number/],
    ['a bad deadLetter', consume('a', { deadLetter: 'no' as never }), /deadLetter must be true/],
    ['an empty name', consume('a', { name: '' }), /name must be a non-empty string/],
    [
      'a misspelt option',
      consume('a', { concurency: 2 } as never),
      /@Consume on Handler.handle has no option 'concurency'; did you mean 'concurrency'\?/,
    ],
    [
      'a misspelt retry field',
      consume('a', { retry: { maxAttempt: 3 } as never }),
      /@Consume on Handler.handle: retry has no option 'maxAttempt'; did you mean 'maxAttempts'\?/,
    ],
    [
      'a bad retry value',
      consume('a', { retry: { backoff: { jitter: 2 } } }),
      /retry.backoff.jitter must be a number from 0 to 1/,
    ],
    ['a wildcard producer', () => Producer('order.*'), /cannot publish to a wildcard topic/],
    [
      'a misspelt producer option',
      () => Producer({ topic: 'a', allowUnroutabel: true } as never),
      /@Producer has no option 'allowUnroutabel'; did you mean 'allowUnroutable'\?/,
    ],
    ['no producer target', () => Producer({}), /give exactly one of a topic/],
  ])('refuses %s with a MessagingConfigError', (_case, apply, message) => {
    expect(apply).toThrow(MessagingConfigError);
    expect(apply).toThrow(message);
  });

  it('accepts every valid form', () => {
    expect(consume('order.*', { retry: false, concurrency: 3, deadLetter: false })).not.toThrow();
    expect(consume({ queue: 'hello', name: 'greeter' })).not.toThrow();
    expect(() => Producer({ queue: 'hello', allowUnroutable: true })).not.toThrow();
  });
});
