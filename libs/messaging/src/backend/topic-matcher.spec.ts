import { topicMatches } from './topic-matcher';

describe('topicMatches', () => {
  it.each([
    ['order.created', 'order.created', true],
    ['order.created', 'order.updated', false],
    ['order.*', 'order.created', true],
    ['order.*', 'order.created.v2', false],
    ['order.*', 'order', false],
    ['order.#', 'order', true],
    ['order.#', 'order.created.v2', true],
    ['#', 'anything.at.all', true],
    ['*.created', 'order.created', true],
    ['#.created', 'a.b.created', true],
    ['a.#.z', 'a.z', true],
    ['a.#.z', 'a.b.c.z', true],
    ['a.#.z', 'a.b.c', false],
    ['a.*.#', 'a', false],
  ])('%s matches %s: %s', (pattern, topic, expected) => {
    expect(topicMatches(pattern, topic)).toBe(expected);
  });
});
