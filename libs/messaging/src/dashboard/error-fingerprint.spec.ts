import { errorFingerprint, errorShape, MAX_SHAPE_LENGTH } from './error-fingerprint';

describe('errorShape', () => {
  it.each([
    ['quoted values', `user 'ann' not found in "eu-1"`, 'user "…" not found in "…"'],
    ['backquotes', 'column `price` is null', 'column "…" is null'],
    ['a UUID', 'order 9b2f4c1e-8d3a-4f6b-9c2d-1e5f7a8b9c0d failed', 'order <id> failed'],
    ['an upper-case UUID', 'id 9B2F4C1E-8D3A-4F6B-9C2D-1E5F7A8B9C0D', 'id <id>'],
    ['a hex id', 'document 5f3a9c0b1d2e4f60 missing', 'document <id> missing'],
    ['a 0x number', 'bad pointer 0xdeadbeef', 'bad pointer <id>'],
    ['a long token', 'key ord_2NfXk39sQpLm8vT rejected', 'key <id> rejected'],
    ['numbers', 'timeout after 30.5 s (try 3 of 10)', 'timeout after # s (try # of #)'],
    ['a number in a word', 'order-123 declined', 'order-# declined'],
    ['spaces', '  too   many\n spaces ', 'too many spaces'],
    ['a word without digits', 'deadbeef gateway unavailable', 'deadbeef gateway unavailable'],
    ['an empty message', '', ''],
  ])('replaces %s', (_, message, shape) => {
    expect(errorShape(message)).toBe(shape);
  });

  it('cuts a long message', () => {
    const shape = errorShape('word '.repeat(100));
    expect(shape).toHaveLength(MAX_SHAPE_LENGTH);
    expect(shape.endsWith('…')).toBe(true);
  });
});

describe('errorFingerprint', () => {
  it.each([
    ['different order ids', true, ['Error', 'order 41 declined'], ['Error', 'order 97 declined']],
    [
      'different UUIDs and names',
      true,
      ['Error', "no user 'ann' (9b2f4c1e-8d3a-4f6b-9c2d-1e5f7a8b9c0d)"],
      ['Error', "no user 'bob' (0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d)"],
    ],
    ['another message shape', false, ['Error', 'order 41 declined'], ['Error', 'order 41 lost']],
    [
      'another class',
      false,
      ['TypeError', 'order 41 declined'],
      ['RangeError', 'order 41 declined'],
    ],
  ])('%s: same group %s', (_, same, [classA, messageA], [classB, messageB]) => {
    const a = errorFingerprint(classA, messageA);
    const b = errorFingerprint(classB, messageB);
    expect(a.fingerprint === b.fingerprint).toBe(same);
  });

  it('is 16 hex digits, stable across calls, with the class and shape', () => {
    const a = errorFingerprint('Error', 'order 41 declined');
    expect(a).toEqual({
      fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/),
      errorClass: 'Error',
      shape: 'order # declined',
    });
    expect(errorFingerprint('Error', 'order 41 declined').fingerprint).toBe(a.fingerprint);
  });

  it('keeps a class apart from a shape that looks like it', () => {
    expect(errorFingerprint('A', 'B x').fingerprint).not.toBe(
      errorFingerprint('A B', 'x').fingerprint,
    );
  });
});
