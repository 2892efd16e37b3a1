import type { Delivery } from '../backend/broker-backend.interface';
import { MessagingHeaders } from '../backend/message-headers';
import { MessageContext } from '../context/message-context';
import { MalformedMessageError, UnrecoverableError } from '../errors/messaging.errors';
import {
  checkVersionOptions,
  MessageVersions,
  planVersion,
  type VersionPlan,
  withVersion,
} from './message-versions';

const V = MessagingHeaders.VERSION;
const where = '@Consume on A.b';
const headers = (version: unknown) => (version === undefined ? {} : { [V]: version });

describe('planVersion', () => {
  // [sent as (header value), handler version, lowest version upcast from, outcome]
  it.each<[unknown, number, number, VersionPlan['action'], string]>([
    [undefined, 1, 1, 'take', 'no header is version 1'],
    [1, 1, 1, 'take', ''],
    ['1', 1, 1, 'take', 'digits (NATS, a foreign producer)'],
    [3, 3, 3, 'take', ''],
    [undefined, 3, 1, 'upcast', 'upcast[1], upcast[2]'],
    ['2', 3, 1, 'upcast', 'upcast[2]'],
    [2, 3, 2, 'upcast', ''],
    [1, 3, 2, 'refuse', 'no upcast[1]'],
    [undefined, 2, 2, 'refuse', 'a handler of version 2 without upcasters'],
    [4, 3, 1, 'refuse', 'newer than the handler'],
    ['abc', 2, 1, 'refuse', 'malformed'],
    [0, 2, 1, 'refuse', 'malformed'],
    [2.5, 2, 1, 'refuse', 'malformed'],
    [true, 2, 1, 'refuse', 'malformed'],
    ['02x', 2, 1, 'refuse', 'malformed'],
  ])('sent as %p, handler of version %p from %p: %s (%s)', (sent, version, lowest, action) => {
    expect(planVersion(headers(sent), { version, lowest }, where).action).toBe(action);
  });

  it('says why it refuses, and what to do, with a reason no retry changes', () => {
    const refusal = (sent: unknown, version: number, lowest: number) => {
      const plan = planVersion(headers(sent), { version, lowest }, where);
      return plan.action === 'refuse' ? plan.error : undefined;
    };
    expect(refusal('abc', 2, 1)).toBeInstanceOf(MalformedMessageError);
    expect(refusal('abc', 2, 1)?.message).toBe(
      'header x-messaging-version is "abc", not a version (a whole number from 1 to 1000000): @Consume on A.b cannot read the message',
    );
    expect(refusal(4, 3, 1)).toBeInstanceOf(UnrecoverableError);
    expect(refusal(4, 3, 1)?.message).toBe(
      'the message is version 4, newer than the version 3 @Consume on A.b takes: deploy a handler that takes version 4 (@Consume(topic, { version: 4 })), then replay the dead letter',
    );
    expect(refusal(1, 3, 2)).toBeInstanceOf(UnrecoverableError);
    expect(refusal(1, 3, 2)?.message).toMatch(
      /version 1 and @Consume on A\.b takes versions 2 to 3: no upcaster turns version 1 into 2; add upcast: \{ 1: /,
    );
  });
});

describe('MessageVersions', () => {
  const ctxOf = (version?: unknown) =>
    new MessageContext({ headers: headers(version) } as unknown as Delivery, 'svc');

  it('is none for a handler without version: the header is never read', () => {
    expect(MessageVersions.of({}, where)).toBeUndefined();
  });

  it('takes its own version as it is (no promise), upcasts older ones step by step (async too)', async () => {
    const versions = MessageVersions.of(
      {
        version: 3,
        upcast: {
          1: (v1: { n: number }) => ({ ...v1, two: true }),
          2: async (v2: object, ctx: MessageContext) => ({ ...v2, three: ctx.version }),
        },
      },
      where,
    ) as MessageVersions;
    expect(versions.upcastFrom).toEqual([1, 2]);
    const same = { n: 0 };
    expect(versions.upcast(same, ctxOf(3))).toBe(same);
    await expect(versions.upcast({ n: 1 }, ctxOf())).resolves.toEqual({
      n: 1,
      two: true,
      three: 1,
    });
    await expect(versions.upcast({ n: 2 }, ctxOf(2))).resolves.toEqual({ n: 2, three: 2 });
    expect(() => versions.upcast({}, ctxOf(4))).toThrow(UnrecoverableError);
  });

  it('keeps the Nest properties of the handler it wraps, and passes it the upcast payload', async () => {
    const versions = MessageVersions.of(
      { version: 2, upcast: { 1: (v1: number) => v1 * 10 } },
      where,
    ) as MessageVersions;
    const handler = Object.assign((payload: unknown) => Promise.resolve(payload), {
      extras: { a: 1 },
      isEventHandler: true,
    });
    const wrapped = versions.wrap(handler);
    expect(wrapped.extras).toBe(handler.extras);
    expect(wrapped.isEventHandler).toBe(true);
    await expect(wrapped(4, ctxOf())).resolves.toBe(40);
    await expect(wrapped(4, ctxOf(2))).resolves.toBe(4);
  });
});

describe('checkVersionOptions', () => {
  const fn = () => ({});
  it.each<[unknown, unknown, RegExp | undefined]>([
    [undefined, undefined, undefined],
    [2, undefined, undefined],
    [3, { 1: fn, 2: fn }, undefined],
    [3, { 2: fn }, undefined],
    [0, undefined, /version must be a whole number from 1 to 1000000, got 0/],
    [1.5, undefined, /version must be a whole number/],
    [undefined, { 1: fn }, /upcast needs version/],
    [2, [fn], /upcast must be an object of upcasters/],
    [2, { 2: fn }, /upcast has key '2', not a version below 2/],
    [2, { 0: fn }, /key '0'/],
    [2, { one: fn }, /key 'one'/],
    [2, { 1: 'x' }, /upcast\[1\] must be a function/],
    [
      3,
      { 1: fn },
      /upcast has no 2, so a message of version 2 or below never reaches version 3: add upcast\[2\]/,
    ],
  ])('version %p, upcast %p', (version, upcast, error) => {
    const check = () => checkVersionOptions(version, upcast, where);
    if (error) expect(check).toThrow(error);
    else expect(check).not.toThrow();
  });
});

describe('withVersion', () => {
  it('stamps the header, or returns the same headers when there is no version', () => {
    const own = { a: 1 };
    expect(withVersion(own, undefined, 'publish(): version')).toBe(own);
    expect(withVersion(own, 2, 'publish(): version')).toEqual({ a: 1, [V]: 2 });
    expect(() => withVersion(own, -1, 'publish(): version')).toThrow(
      /publish\(\): version must be a whole number from 1/,
    );
  });
});
